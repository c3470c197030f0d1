"""The method registry's one selection routine chooses what the per-method loops chose before it.

The fixture holds the cached embeddings of a default colored_mnist run (seed 0) and every candidate
table the selection code before the registry (git 07d8bb5) wrote for them. The same grids run through
today's code must score every candidate identically on the selection half and pick the same winner.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from neurontune.core import LinearHead, SelectionSet, baselines, head_predict, select_neurontune
from neurontune.core.scoring import score_neurons

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "selection_before_registry"
GRID = {"threshold": [0.0, 0.25, 0.5, 1.0], "rule": ["all", "any", "per_class"], "weight_decay": [0.0001, 0.001, 0.01]}
C_GRID = [1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01]


@pytest.fixture(scope="module")
def cache():
    with np.load(FIXTURE / "cache.npz") as arrays:
        return {key: arrays[key] for key in arrays.files}


@pytest.fixture(scope="module")
def before():
    return json.loads((FIXTURE / "tables.json").read_text())["tables"]


def neurontune_tables(cache):
    ide, sel = cache["ide"], cache["sel"]
    erm = LinearHead.from_arrays(cache["erm_weight"], cache["erm_bias"])
    ide_pred = cache["val_logits"][ide].argmax(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = score_neurons(cache["val_embeddings"][ide], cache["val_y"][ide], ide_pred, 2)
    selection = SelectionSet.build(cache["val_embeddings"][sel], cache["val_y"][sel], 2)
    identification = {"ide_embeddings": cache["val_embeddings"][ide], "ide_y": cache["val_y"][ide],
                      "ide_erm_pred": ide_pred, "scores": scores, "init": erm}
    tune = {"neurontune": (cache["train_embeddings"], cache["train_y"]),
            "neurontune_dagger": (cache["val_embeddings"][ide], cache["val_y"][ide]),
            "class_balanced_retrain": (cache["train_embeddings"], cache["train_y"])}
    tables = {}
    for method, (x, y) in tune.items():
        use_mask = method != "class_balanced_retrain"
        grid = GRID if use_mask else {"weight_decay": GRID["weight_decay"]}
        fold = {**identification, "tune_embeddings": x, "tune_y": y}
        _, tables[method] = select_neurontune(grid, {"n_classes": 2, "use_mask": use_mask}, [fold], [selection],
                                              progress=None)
    return tables


def baseline_tables(cache):
    ide, sel = cache["ide"], cache["sel"]
    erm = LinearHead.from_arrays(cache["erm_weight"], cache["erm_bias"])
    halves = (cache["val_embeddings"][ide], cache["val_y"][ide], cache["val_embeddings"][sel], cache["val_y"][sel], 2)
    train = (cache["train_embeddings"], cache["train_y"], cache["val_embeddings"][sel], cache["val_y"][sel], 2)
    groups = {"tune_groups": cache["val_group"][ide], "sel_groups": cache["val_group"][sel], "n_groups": 4}
    return {
        "dfr": baselines.dfr(*halves, **groups, c_grid=C_GRID).candidates,
        "dfr_groupfree": baselines.dfr_groupfree(*halves, c_grid=C_GRID).candidates,
        "jtt_last_layer": baselines.jtt_last_layer(*train, erm_head=erm, upweights=[1.0, 5.0, 20.0, 50.0, 100.0],
                                                   weight_decays=[0.0001, 0.001, 0.01]).candidates,
        "afr": baselines.afr(*train, erm_head=erm, gammas=[0.0, 1.0, 2.0, 4.0, 8.0, 16.0],
                             anchor_strengths=[0.001, 0.01, 0.1]).candidates,
    }


def test_every_method_scores_its_candidates_and_picks_its_winner_as_before(cache, before):
    tables = {**neurontune_tables(cache), **baseline_tables(cache)}
    for method, old in before.items():
        new = tables[method]
        rows = {tuple(row[key] for key in old["keys"]): row for row in new}
        assert len(rows) == len(old["candidates"]), method
        for candidate, score, mean in zip(old["candidates"], old["scores"], old["mean"]):
            row = rows[tuple(candidate[key] for key in old["keys"])]
            assert row[old["criterion"]] == pytest.approx(score, abs=1e-12), (method, candidate)
            assert row["sel_mean_accuracy"] == pytest.approx(mean, abs=1e-12), (method, candidate)
        winner = next(row for row in new if row["selected"])
        assert {key: winner[key] for key in old["keys"]} == old["candidates"][old["selected"]], method
