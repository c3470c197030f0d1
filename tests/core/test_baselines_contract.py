"""The baselines' contract in detail: documented defaults, every bad argument named, the candidate table
returned. Written from the survivors of mutation testing (docs/testing.md)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from neurontune.core import LinearHead, baselines

SHARED_DFR = {"c_grid": baselines.DFR_C_GRID, "n_refits": 20, "refit_on_all": True, "seed": 0}


def defaults(function) -> dict:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not p.empty and p.kind is not p.VAR_KEYWORD}


def test_documented_defaults():
    assert baselines.DFR_C_GRID == (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)  # the reference implementation's grid
    assert defaults(baselines.dfr) == SHARED_DFR and defaults(baselines.dfr_groupfree) == SHARED_DFR
    assert defaults(baselines.jtt_last_layer) == {"upweights": (1.0, 5.0, 20.0, 50.0, 100.0),
                                                  "weight_decays": (1e-4, 1e-3, 1e-2), "balance_classes": False,
                                                  "init_from_erm": True}
    assert defaults(baselines.afr) == {"gammas": (0.0, 1.0, 2.0, 4.0, 8.0, 16.0), "anchor_strengths": (1e-3, 1e-2, 1e-1),
                                       "weight_decay": 0.0}
    assert defaults(baselines.group_balanced_oracle) == {"weight_decays": (1e-4, 1e-3, 1e-2), "c_grid": baselines.DFR_C_GRID,
                                                         "n_refits": 20, "erm_head": None, "init_from_erm": True, "seed": 0}


@pytest.fixture(scope="module")
def halves():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(int)
    groups = 2 * y + (x[:, 1] > 0)
    return {"tune": (x[:20], y[:20], groups[:20]), "sel": (x[20:], y[20:], groups[20:])}


def call(method, halves, **change):
    (tune_x, tune_y, tune_g), (sel_x, sel_y, sel_g) = halves["tune"], halves["sel"]
    arguments = {"tune_embeddings": tune_x, "tune_y": tune_y, "sel_embeddings": sel_x, "sel_y": sel_y, **change}
    options = {"c_grid": (1.0,), "n_refits": 1}
    if method in ("dfr", "group_balanced_oracle"):
        options.update(tune_groups=change.pop("tune_groups", tune_g), sel_groups=change.pop("sel_groups", sel_g), n_groups=4)
        arguments.pop("tune_groups", None), arguments.pop("sel_groups", None)
    if method == "group_balanced_oracle":
        options["weight_decays"] = (1e-2,)
    options.update({key: change[key] for key in ("c_grid", "n_refits") if key in change})
    arguments = {key: value for key, value in arguments.items() if key not in ("c_grid", "n_refits")}
    return getattr(baselines, method)(arguments.pop("tune_embeddings"), arguments.pop("tune_y"),
                                      arguments.pop("sel_embeddings"), arguments.pop("sel_y"), 2, **options)


@pytest.mark.parametrize("method", ["dfr", "dfr_groupfree", "group_balanced_oracle"])
@pytest.mark.parametrize(("change", "message"), [
    ({"tune_embeddings": np.zeros(20)}, r"^tune_embeddings must be a 2-D array"),
    ({"sel_embeddings": np.zeros(20)}, r"^sel_embeddings must be a 2-D array"),
    ({"sel_embeddings": np.zeros((20, 2))}, r"embedding widths differ between splits \(tune_embeddings: 3, sel_embeddings: 2\)"),
    ({"tune_y": np.zeros(3, int)}, r"^tune_y has 3 entries but the embeddings have 20 rows"),
    ({"sel_y": np.zeros(3, int)}, r"^sel_y has 3 entries but the embeddings have 20 rows"),
    ({"n_refits": 0}, r"^n_refits must be a positive integer; got 0\.$"),
    ({"c_grid": (1.0, 0.0)}, r"^c_grid must be a non-empty list of positive numbers; got \[1\.0, 0\.0\]\.$"),
], ids=["tune_embeddings", "sel_embeddings", "widths", "tune_y", "sel_y", "n_refits", "c_grid"])
def test_bad_arguments_are_named(halves, method, change, message):
    with pytest.raises(ValueError, match=message):
        call(method, halves, **change)


@pytest.mark.parametrize("method", ["dfr", "group_balanced_oracle"])
@pytest.mark.parametrize(("change", "message"), [
    ({"tune_groups": np.zeros(3, int)}, r"^tune_groups has 3 entries but the embeddings have 20 rows"),
    ({"sel_groups": np.zeros(3, int)}, r"^sel_groups has 3 entries but the embeddings have 20 rows"),
], ids=["tune_groups", "sel_groups"])
def test_bad_group_labels_are_named(halves, method, change, message):
    with pytest.raises(ValueError, match=message):
        call(method, halves, **change)


@pytest.mark.parametrize("method", ["dfr", "dfr_groupfree", "group_balanced_oracle"])
def test_one_refit_is_enough_and_the_candidate_table_comes_back(halves, method):
    fitted = call(method, halves)
    assert isinstance(fitted.head, LinearHead) and fitted.head.weight.shape == (2, 3)
    assert sum(row["selected"] for row in fitted.candidates) == 1


@pytest.mark.parametrize("method", ["jtt_last_layer", "afr"])
def test_erm_based_baselines_check_the_erm_head(halves, method):
    (tune_x, tune_y, _), (sel_x, sel_y, _) = halves["tune"], halves["sel"]
    wrong_width = LinearHead.from_arrays(np.zeros((2, 5)), np.zeros(2))
    with pytest.raises(ValueError, match=r"5"):
        getattr(baselines, method)(tune_x, tune_y, sel_x, sel_y, 2, erm_head=wrong_width)
