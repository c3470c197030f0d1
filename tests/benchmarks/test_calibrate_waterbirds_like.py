"""The waterbirds_like calibration's validity statistics on tiny planted data: the core's oracle (search_grid over
group_balanced_oracle's candidates) on class-stratified halves, groups from core.groups, and the `--from-run` command."""

import json

import numpy as np
import pandas as pd
import pytest

from benchmarks import calibrate_waterbirds_like as calibration
from neurontune.core.baselines import group_balanced_oracle
from neurontune.core.groups import stratified_split


def planted(n_per_group: int, majority: float, seed: int, n_attributes: int = 2) -> dict:
    """Two classes × ``n_attributes``: feature 0 carries the class (noisy), feature 1 the attribute (clean), which
    agrees with the class in ``majority`` of the samples."""
    rng = np.random.default_rng(seed)
    rows = []
    for y in (0, 1):
        for a in range(n_attributes):
            count = int(n_per_group * (2 * majority if a == y else 2 * (1 - majority)))
            rows += [(y, a)] * max(count, 4)
    y, a = (np.array(column) for column in zip(*rows))
    x = np.column_stack([y + rng.normal(0, 0.2, len(y)), a + rng.normal(0, 0.05, len(y)), rng.normal(0, 1, len(y))])
    return {"x": x, "y": y, "a": a, "g": y * n_attributes + a}


def test_the_oracle_is_the_cores_on_class_stratified_halves():
    val, test = planted(30, 0.5, seed=0), planted(50, 0.5, seed=1)
    found = calibration.oracle(val, test, seed=3, n_classes=2, n_groups=4)
    assert set(found) == {"oracle_wga", "oracle_mean", "oracle_choice", "oracle_crossfit_wga"}
    first, second = stratified_split(val["y"], 0.5, 3)
    core = group_balanced_oracle(val["x"][first], val["y"][first], val["x"][second], val["y"][second], 2,
                                 tune_groups=val["g"][first], sel_groups=val["g"][second], n_groups=4,
                                 weight_decays=calibration.L2_WEIGHT_DECAYS, seed=3)
    best = next(row for row in core.candidates if row["selected"])
    solver, value = found["oracle_choice"].split("=")
    assert calibration.CHOICE_NAMES[best["solver"]] == solver
    assert float(value) == (best["C"] if best["solver"] == "dfr_l1" else best["weight_decay"])
    assert found["oracle_crossfit_wga"] == best["sel_worst_group_accuracy"]
    assert found["oracle_wga"] >= 0.9  # the class feature is there: group labels buy a head that uses it


def test_groups_come_from_class_and_attribute_whatever_their_number():
    metadata = pd.DataFrame({"y": [0, 0, 1, 1, 1], "a": [0, 2, 1, 2, 0]})
    groups, n_classes, n_groups = calibration.group_labels(metadata)
    assert (n_classes, n_groups) == (2, 6)
    np.testing.assert_array_equal(groups, [0, 2, 4, 5, 3])
    assert calibration.worst_group(np.array([0, 0, 1]), np.array([0, 1, 1]), np.array([0, 5, 5]), n_groups) == 0.5


def test_from_run_scores_a_finished_runs_cache(tmp_path, capsys):
    data = tmp_path / "data" / "tweets_negation"
    (data / "04_feature").mkdir(parents=True)
    (data / "01_raw").mkdir()
    tables = []
    for offset, (split, sample) in enumerate((("val", planted(30, 0.5, seed=0)), ("test", planted(50, 0.95, seed=1)))):
        ids = np.arange(len(sample["y"])) + 10_000 * offset
        erm = np.column_stack([0.5 - sample["x"][:, 1], sample["x"][:, 1] - 0.5])  # ERM follows the attribute: the shortcut
        np.savez(data / "04_feature" / f"embeddings_{split}.npz", embeddings=sample["x"], y=sample["y"], sample_id=ids,
                 logits=erm)
        tables.append(pd.DataFrame({"sample_id": ids, "split": split, "y": sample["y"], "a": sample["a"],
                                    "group": sample["g"]}))
    pd.concat(tables).to_parquet(data / "01_raw" / "metadata.parquet")
    calibration.main(["--from-run", str(tmp_path), "--benchmark", "tweets_negation", "--seeds", "0"])
    found = json.loads(capsys.readouterr().out)
    assert found["erm_wga"] == 0.0 and found["erm_mean"] == pytest.approx(0.95, abs=0.01)  # minority groups all wrong
    assert found["oracle_wga"] >= 0.9 and found["headroom"] == found["oracle_wga"] - found["erm_wga"]
