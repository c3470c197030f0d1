"""`neurontune explain`: a registered model's galleries and masked-neuron table, rebuilt from its run's artifacts."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from neurontune.console import main
from neurontune.tracking.explain import _rebuild, format_explanation

from .conftest import MODEL_NAME


@pytest.fixture
def explain(trained_project, capsys, tmp_path):
    """``neurontune explain`` in process (it sets the tracking URI: tests/conftest.py undoes it)."""

    def run(uri: str, *options: str):
        code = main(["explain", uri, "--tracking-uri", trained_project.tracking_uri, "--project-dir",
                     str(trained_project.path), "--output", str(tmp_path / "explained"), *options])
        return code, capsys.readouterr().out

    return run


def test_explain_rebuilds_the_evidence_of_the_registered_method(trained_project, explain, tmp_path):
    """The champion (v2) was registered by a promotion-only run: its evidence comes from the run that fitted it."""
    method = trained_project.champion_method
    client = mlflow.MlflowClient(trained_project.tracking_uri, trained_project.tracking_uri)
    fitting_run = client.get_model_version(MODEL_NAME, "1").run_id  # the full DAG run (v1 packaged ERM's head)
    code, out = explain(f"models:/{MODEL_NAME}/2", "--run-id", fitting_run)
    assert code == 0, out
    reporting = trained_project.path / "data" / "ci" / "08_reporting"
    quality = json.loads((reporting / "metrics.json").read_text())["mask_quality"][method]
    assert f"{MODEL_NAME} v2" in out and f"method {method}" in out and "do-no-harm guard:" in out
    assert f"precision {quality['precision']:.3f}" in out or quality["n_masked"] == 0
    assert "recorded in metrics.json: the same" in out
    explained = tmp_path / "explained"
    for name in (f"{method}_gallery.png", f"{method}_gallery.md", f"{method}_evidence.parquet"):
        assert (explained / name).read_bytes() == (reporting / "mask_evidence" / name).read_bytes()
    table = pd.read_csv(explained / f"{method}_masked_neurons.csv")
    assert len(table) == quality["n_masked"] and table["delta"].is_monotonic_decreasing
    aurocs = pd.read_parquet(reporting / "neuron_aurocs.parquet").set_index("neuron")
    np.testing.assert_allclose(table["attribute_auroc"].to_numpy(float), aurocs.loc[table["neuron"], "attribute_auroc"])


def test_the_masked_neuron_table_is_rebuilt_from_head_scores_and_aurocs(tmp_path):
    """Neurons 1 and 3 masked (3 only in class 1's row); δ from the variant's scored role, largest first."""
    head, scores, aurocs = tmp_path / "head.npz", tmp_path / "scores.npz", tmp_path / "aurocs.parquet"
    np.savez(head, weight=np.ones((2, 4)), bias=np.zeros(2), keep=np.array([[1.0, 0.0, 1.0, 1.0], [1.0, 0.0, 1.0, 0.0]]))
    roles = ("val_ide.erm.median", "val_all.erm.median")
    counts = {f"{role}_{key}": np.array([3, 3]) for role in roles for key in ("n_wrong", "n_right")}
    np.savez(scores, **{"val_ide.erm.median_scores": np.array([[0.0, 0.2, 0.0, np.nan], [0.0, 0.1, 0.0, 0.7]]),
                        "val_all.erm.median_scores": np.array([[0.0, 0.9, 0.0, 0.1], [0.0, 0.1, 0.0, 0.3]])}, **counts)
    pd.DataFrame({"neuron": range(4), "attribute_auroc": [0.5, 0.9, 0.2, 0.6], "core_auroc": [0.9, 0.5, 0.5, 0.5],
                  "attribute_neuron": [False, True, True, False]}).to_parquet(aurocs)
    fetched = {"head": head, "scores": scores, "aurocs": aurocs}
    params = {"neurontune_regulation.variants.toy.tune_set": "train", "evaluation.mask_quality.auroc_threshold": "0.7"}
    table, quality = _rebuild(fetched, params, "toy")
    assert table["neuron"].tolist() == [3, 1] and table["delta"].tolist() == pytest.approx([0.7, 0.2])
    assert quality["precision"] == 0.5 and quality["recall"] == 0.5 and quality["auroc_threshold"] == 0.7
    crossfit, _ = _rebuild(fetched, {**params, "neurontune_regulation.variants.toy.tune_set": "val_crossfit"}, "toy")
    assert crossfit["neuron"].tolist() == [1, 3]  # δ from all of validation: 0.9 vs 0.3
    assert _rebuild({**fetched, "aurocs": None}, params, "toy") == (None, None)
    # evaluated without group labels: the AUROC table has the neurons only, and the account says what is not measurable
    pd.DataFrame({"neuron": range(4), "masked_toy": [False, True, False, True]}).to_parquet(aurocs)
    table, quality = _rebuild(fetched, params, "toy")
    assert list(table.columns) == ["neuron", "delta"] and table["neuron"].tolist() == [3, 1]
    assert quality == {"n_masked": 2, "n_neurons": 4, "not_measurable": "not measurable: no group labels"}
    text = format_explanation({"model": {"name": "m", "version": "1", "aliases": [], "method": "toy", "run_id": "r",
                                         "guard": {}}, "masked": table, "recomputed": quality, "recorded": None, "files": []})
    assert "mask: 2 of 4 neurons; does the mask hit the shortcut? not measurable: no group labels" in text
    assert "attribute AUROC" not in text and "      3   +0.700" in text


def test_a_promotion_only_version_points_to_the_run_that_fitted_it(trained_project, explain):
    code, out = explain(f"models:/{MODEL_NAME}/2")
    assert code == 0 and "--run-id" in out
    uri = trained_project.tracking_uri
    first_run = mlflow.MlflowClient(uri, uri).get_model_version(MODEL_NAME, "1").run_id
    code, out = explain(f"models:/{MODEL_NAME}/2", "--run-id", first_run)
    assert code == 0 and "recorded in metrics.json: the same" in out


def test_a_bad_uri_exits_2(explain):
    with pytest.raises(SystemExit) as exit_info:
        explain("runs:/abc")
    assert exit_info.value.code == 2
