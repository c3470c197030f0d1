"""kedro-viz's static export, loaded in headless Chromium, draws every node of every registered pipeline."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from websockets.sync.client import connect

from neurontune.pipeline_registry import register_pipelines
from tests.conftest import copy_project, kedro, patience

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium: `chromium` on PATH (Debian: "
                                                         "apt-get install -y chromium) or CHROMIUM=/path/to/chrome")
PIPELINES = register_pipelines()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def viz_site(tmp_path_factory):
    """``kedro viz build`` of a fresh project copy, served on a free loopback port."""
    project = copy_project(tmp_path_factory.mktemp("viz"))
    kedro(project, "viz", "build")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(project / "build")))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


TASK_NODE_NAMES = ("JSON.stringify(Array.from(document.querySelectorAll('g.pipeline-node--task'))"
                   ".map(node => node.getAttribute('data-node-fullname')))")


class _DevTools:
    """Headless Chromium driven over the DevTools protocol on 127.0.0.1 (the port Chromium picks, read from its
    profile's ``DevToolsActivePort``): one page, commands answered in order."""

    def __init__(self, profile: str) -> None:
        log = Path(profile) / "chromium.log"
        self.log = open(log, "w")  # a file, not a pipe: a pipe nobody reads would stall Chromium once full
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--window-size=1400,900", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True)
        try:  # a Chromium that never answers is stopped, not left behind
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + patience(60)
            while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
                assert self.process.poll() is None, f"chromium exited: {log.read_text()[-2000:]}"
                assert time.monotonic() < deadline, "chromium opened no DevTools port"
                time.sleep(0.1)
            port = int(port_file.read_text().splitlines()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=patience(30)) as answer:
                page = next(target for target in json.load(answer) if target["type"] == "page")
            self.socket = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=patience(30))
        except BaseException:
            self.close()
            raise
        self.last_id = 0

    def call(self, method: str, **params) -> dict:
        self.last_id += 1
        self.socket.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while True:  # events (none subscribed) and earlier answers are skipped
            message = json.loads(self.socket.recv(timeout=patience(60)))
            if message.get("id") == self.last_id:
                assert "error" not in message, message["error"]
                return message["result"]

    def close(self) -> None:
        if hasattr(self, "socket"):
            self.socket.close()
        # Chromium's helper processes outlive its main one for a moment, still writing to the profile folder
        # (which is then removed): kill the whole process group (nothing of the profile is kept) and wait until
        # none of it is left
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=patience(30))
        deadline = time.monotonic() + patience(30)
        while _running_in_group(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.log.close()


def _running_in_group(group: int) -> bool:
    """Whether a process of this group still runs (zombies, which the container's init may reap late, do not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # after "pid (comm)": state, ppid, pgrp; comm may hold spaces and parentheses
            state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(pgrp) == group and state != "Z":
            return True
    return False


def drawn_task_nodes(url: str, expected: list[str]) -> list[str]:
    """The flowchart's task nodes as Chromium draws them, read from the live DOM until they are the expected ones
    or the drawing has stopped changing. kedro-viz lays the graph out in a web worker, which a fixed (virtual)
    time budget does not wait for: on a busy runner the largest graph was still empty when the DOM was dumped."""
    with tempfile.TemporaryDirectory() as profile:
        browser = _DevTools(profile)
        try:
            browser.call("Page.navigate", url=url)
            deadline, drawn, unchanged = time.monotonic() + patience(180), [], 0
            while time.monotonic() < deadline:
                time.sleep(0.5)
                now = sorted(json.loads(browser.call("Runtime.evaluate", expression=TASK_NODE_NAMES,
                                                     returnByValue=True)["result"]["value"]))
                unchanged = unchanged + 1 if now and now == drawn else 0
                drawn = now
                if drawn == expected or unchanged >= 10:  # five seconds without change: the drawing is done
                    break
            return drawn
        finally:
            browser.close()


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_each_pipeline_draws_its_nodes(viz_site, name):
    # kedro-viz falls back to __default__ for an unknown pipeline id, so a pipeline missing from
    # the export fails here (the whole DAG would be drawn instead)
    # expanded, a namespaced node is drawn under its own name (without the namespace prefix)
    expected = sorted(node.name.removeprefix(f"{node.namespace}.") if node.namespace else node.name
                      for node in PIPELINES[name].nodes)
    assert drawn_task_nodes(f"{viz_site}/?pid={name}&expandAllPipelines=true", expected) == expected
