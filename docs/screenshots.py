"""Capture the README's pictures from a running MLflow UI and kedro-viz (``screenshots.sh`` starts them).

Headless Chromium is driven over its DevTools protocol rather than with ``--screenshot``: both apps
are single-page apps that open side panels and hint pop-ups on a first visit and draw their
content late. Local storage is seeded before the page's scripts run to keep the pop-ups closed,
and each capture waits for its own content (graph nodes, the artifact image, the aliases).
What to show is looked up in the tracking store each time (the champion's run, its plot), so
the pictures follow the pipeline as it changes.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import quote

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from websockets.sync.client import connect

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]
#: MLflow UI: keep the assistant panel closed (it takes a third of the window on a first visit).
MLFLOW_STORAGE = {"mlflow.assistant.panelOpen_v1": "false", "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true"}
#: kedro-viz: no feature-hint tour, no side bar or minimap, light theme, task nodes only
#: (with its ~40 datasets the whole DAG would not be legible at any window size).
VIZ_STORAGE = {"KedroViz": json.dumps({
    "showFeatureHints": False, "theme": "light", "orientation": "vertical",
    "visible": {"sidebar": False, "miniMap": False},
    "nodeType": {"disabled": {"parameters": True, "task": False, "data": True}},
})}
#: Version tags kept on the registry picture; each version carries ~35, which hide the aliases.
MODEL_TAGS_SHOWN = ["benchmark", "method", "git_commit", "promotion.status"]

# Refit kedro-viz's zoom to the drawn nodes: its own fit leaves the run-status markers and the
# widest labels past the right edge. Moves the d3 zoom group; the page is not used afterwards.
FIT_GRAPH = """(() => {
  const wrapper = document.querySelector('g.pipeline-zoom-wrapper');
  const toolbar = document.querySelector('button[aria-label="Reset zoom"]').parentElement.getBoundingClientRect();
  const boxes = [...document.querySelectorAll('g.pipeline-node')].map(node => node.getBoundingClientRect());
  const [left, top] = [Math.min(...boxes.map(b => b.left)), Math.min(...boxes.map(b => b.top))];
  const [width, height] = [Math.max(...boxes.map(b => b.right)) - left, Math.max(...boxes.map(b => b.bottom)) - top];
  const [x, y] = wrapper.getAttribute('transform').match(/-?[0-9.]+/g).map(Number);
  const scale = Number(wrapper.getAttribute('transform').match(/scale\\(([0-9.]+)/)[1]);
  const pad = 24, areaLeft = toolbar.right + pad, areaWidth = innerWidth - areaLeft - pad, areaHeight = innerHeight - 2 * pad;
  const factor = Math.min(areaWidth / width, areaHeight / height);
  const newX = areaLeft + (areaWidth - width * factor) / 2 - factor * (left - x);
  const newY = pad + (areaHeight - height * factor) / 2 - factor * (top - y);
  wrapper.setAttribute('transform', `translate(${newX},${newY}) scale(${scale * factor})`);
  return boxes.length;
})()"""

# Hide all "key: value" tags but a few (alias chips, "@ champion", are tag elements too).
TRIM_TAGS = """(keep => {
  let hidden = 0;
  document.querySelectorAll('[data-component-type="tag"]').forEach(tag => {
    const key = tag.textContent.split(':')[0].trim();
    if (tag.textContent.includes(':') && !keep.includes(key)) { tag.style.display = 'none'; hidden += 1; }
  });
  return hidden;
})"""


class Chromium:
    """One headless Chromium tab, driven over the DevTools protocol on loopback."""

    def __init__(self, executable: str = "chromium", timeout: float = 30.0):
        self.profile = Path(tempfile.mkdtemp(prefix="chromium-"))
        self.resources = ExitStack()
        self.process = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not port_file.exists() or not port_file.read_text().strip():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"{executable} did not open its DevTools port within {timeout} s")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            page = next(target for target in json.load(response) if target["type"] == "page")
        self.socket = self.resources.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=timeout))
        self.next_id = 0

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:  # skip the protocol's events until our answer arrives
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed in the page: {result['exceptionDetails'].get('exception', result)}")
        return result["result"].get("value")

    def open(self, url: str, width: int, height: int, storage: dict[str, str], scale: float = 1.0) -> None:
        """Load ``url`` in a ``width`` x ``height`` window with ``storage`` in local storage before any script runs."""
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=scale, mobile=False)
        seed = "".join(f"localStorage.setItem({json.dumps(key)}, {json.dumps(value)});" for key, value in storage.items())
        self.call("Page.addScriptToEvaluateOnNewDocument", source=f"if (location.protocol.startsWith('http')) {{{seed}}}")
        self.call("Page.navigate", url=url)

    def wait_for(self, condition: str, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"(() => {{ try {{ return Boolean({condition}); }} catch (error) {{ return false; }} }})()"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not appear within {timeout} s (waited for `{condition}`)")
            time.sleep(0.25)
        time.sleep(1.5)  # let transitions finish (graphs and charts animate in)

    def capture(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        print(f"wrote {path}")

    def close(self) -> None:
        self.resources.close()
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        shutil.rmtree(self.profile, ignore_errors=True)


def champion_run(client: MlflowClient, model: str):
    """The ``@champion`` version of ``model`` and the run that produced it."""
    try:
        version = client.get_model_version_by_alias(model, "champion")
    except MlflowException as error:
        raise SystemExit(f"no {model}@champion in the tracking store ({error.message}): run `make run` first")
    return version, client.get_run(version.run_id)


def png_artifacts(client: MlflowClient, run_id: str, path: str | None = None, depth: int = 2) -> list[str]:
    found = []
    for item in client.list_artifacts(run_id, path):
        if item.is_dir and depth > 1:
            found += png_artifacts(client, run_id, item.path, depth - 1)
        elif item.path.endswith(".png"):
            found.append(item.path)
    return found


def plot_artifact(client: MlflowClient, run_id: str) -> str | None:
    """The run's group-accuracy plot, else its first PNG artifact, else None."""
    pngs = png_artifacts(client, run_id)
    return next((p for p in pngs if "group_accuracy" in p), pngs[0] if pngs else None)


def capture_dag(chromium: str, viz_url: str, out: Path) -> None:
    with Chromium(chromium) as browser:
        browser.open(f"{viz_url}/?pid=__default__", 1400, 860, VIZ_STORAGE, scale=2)  # 2x: legible when opened
        browser.wait_for("document.querySelectorAll('g.pipeline-node--task').length > 0", "kedro-viz's graph")
        browser.evaluate("[...document.querySelectorAll('button')].filter(b => b.innerText.trim() === 'Dismiss')"
                         ".forEach(b => b.click())")  # the "new version" banner, shown when PyPI is not reachable
        browser.evaluate(FIT_GRAPH)
        browser.capture(out / "kedro_viz_pipeline.png")


def capture_run(chromium: str, ui_url: str, client: MlflowClient, run, out: Path) -> None:
    plot = plot_artifact(client, run.info.run_id)
    page = f"{ui_url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}/artifacts"
    with Chromium(chromium) as browser:
        browser.open(f"{page}/{quote(plot)}" if plot else page, 1400, 640, MLFLOW_STORAGE)
        if plot:
            browser.wait_for("[...document.images].some(i => i.complete && i.naturalWidth > 200)", f"the artifact {plot}")
        else:
            browser.wait_for("document.body.innerText.includes('Artifacts')", "the run's artifacts tab")
        browser.capture(out / "mlflow_run.png")


def capture_model(chromium: str, ui_url: str, model: str, out: Path) -> None:
    with Chromium(chromium) as browser:
        browser.open(f"{ui_url}/#/models/{quote(model)}", 1400, 700, MLFLOW_STORAGE)
        browser.wait_for("""[...document.querySelectorAll('[data-component-type="tag"]')]
                            .some(tag => /^@\\s*champion$/.test(tag.textContent.trim()))""", f"{model}'s @champion alias")
        browser.evaluate(f"{TRIM_TAGS}({json.dumps(MODEL_TAGS_SHOWN)})")
        browser.capture(out / "mlflow_model.png")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mlflow", required=True, help="URL of the running MLflow UI")
    parser.add_argument("--viz", required=True, help="URL of the running kedro-viz")
    parser.add_argument("--tracking-uri", required=True, help="the store the MLflow UI serves")
    parser.add_argument("--model", default="neurontune-colored_mnist", help="registered model to show")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--chromium", default="chromium")
    arguments = parser.parse_args(argv)
    arguments.out.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(arguments.tracking_uri)
    _, run = champion_run(client, arguments.model)
    capture_dag(arguments.chromium, arguments.viz, arguments.out)
    capture_run(arguments.chromium, arguments.mlflow, client, run, arguments.out)
    capture_model(arguments.chromium, arguments.mlflow, arguments.model, arguments.out)


if __name__ == "__main__":
    main()
