"""`mlflow models serve` answers JSON requests on loopback; bad requests get a clear 400."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest

from .conftest import MODEL_NAME, free_port, patience, stop, wait_for_http


@pytest.fixture(scope="module")
def server(trained_project, tmp_path_factory):
    port = free_port()
    log = open(tmp_path_factory.mktemp("serve") / "serve.log", "w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL_NAME}@champion",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        cwd=trained_project.path, env=trained_project.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", process, timeout=patience(120))
        yield f"http://127.0.0.1:{port}"
    except Exception:
        log.seek(0)
        raise RuntimeError(log.read()[-4000:])
    finally:
        stop(process)
        log.close()


def invoke(url: str, payload) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=patience(60)) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def test_images(trained_project):
    with np.load(trained_project.path / "data/ci/01_raw/inputs.npz") as arrays:
        inputs = arrays["inputs"]
    metadata = pd.read_parquet(trained_project.path / "data/ci/01_raw/metadata.parquet")
    rows = np.flatnonzero(metadata["split"].to_numpy() == "test")[:8]
    return inputs[rows], metadata["sample_id"].to_numpy()[rows]


def test_serves_predictions_matching_evaluation(server, trained_project, test_images):
    images, sample_ids = test_images
    status, body = invoke(server, {"inputs": images.tolist()})
    assert status == 200, body
    predictions = pd.DataFrame(body["predictions"])
    assert list(predictions.columns) == ["prediction", "probability_0", "probability_1"]
    scored = pd.read_parquet(trained_project.path / "data/ci/07_model_output/method_predictions.parquet")
    scored = scored[(scored["method"] == trained_project.champion_method) & (scored["split"] == "test")].set_index("sample_id")
    assert predictions["prediction"].tolist() == scored.loc[sample_ids, "y_pred"].tolist()
    np.testing.assert_allclose(predictions[["probability_0", "probability_1"]].sum(axis=1), 1.0)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (lambda images: {"inputs": images[:, :, :20].tolist()}, "shape"),               # wrong shape
        (lambda images: {"inputs": images[:, 0].tolist()}, "shape"),                     # wrong rank
        (lambda images: {"inputs": [[["a"] * 28] * 28] * 3}, "invalid literal"),         # wrong dtype (strings)
        (lambda images: {"inputs": (images.astype(int) - 300).tolist()}, "out of bounds"),  # not uint8 values
        (lambda images: {"inputs": []}, "'[]'"),                                         # empty batch
    ],
    ids=["wrong_shape", "wrong_rank", "strings", "out_of_range", "empty_batch"],
)
def test_bad_requests_get_a_clear_error(server, test_images, payload, expected):
    status, body = invoke(server, payload(test_images[0]))
    assert status == 400, body
    assert body["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")
    assert expected in body["message"]
