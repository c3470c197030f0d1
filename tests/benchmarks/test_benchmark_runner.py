"""The benchmark runner: run parameters, the report's arithmetic, and one tiny end-to-end run on the `ci` env."""

import shutil

import numpy as np
import pandas as pd
import pytest

from benchmarks import run as runner
from tests.conftest import PROJECT_ROOT


def test_each_seed_changes_data_erm_split_regulation_and_baselines():
    params = runner.run_parameters(7, 0.95, "finetune")
    for name in ("data_versioning.seed", "erm_training.seed", "neurontune_regulation.tuning.seed",
                 "neuron_identification.selection_split.seed", "baselines.settings.seed"):
        assert params[name] == 7
    assert params["data_versioning.val_correlation"] == 0.95 and params["erm_training.mode"] == "finetune"
    assert "erm_training.mode" not in runner.run_parameters(7, 0.5)


def test_benchmarks_are_kedro_environments():
    command = runner.kedro_command("waterbirds_like", {"a.b": 1}, ["c=2"])
    assert command[-4:] == ["--env", "waterbirds_like", "--params", "a.b=1,c=2"]


def test_method_costs_come_from_the_registry():
    nodes = runner.method_nodes()
    assert nodes["neurontune"] == ("score_identification_neurons", "neurontune_regulation.regulate_neurontune")
    assert nodes["dfr"] == ("baselines.fit_dfr",) and nodes["erm"] == ("train_erm_model",)


def test_unknown_regimes_and_modes_are_rejected():
    with pytest.raises(SystemExit):
        runner.parse_arguments(["--regimes", "balanced,sideways"])
    with pytest.raises(SystemExit):
        runner.parse_arguments(["--erm-modes", "frozen"])


@pytest.fixture
def rows():
    """Two seeds of four methods; NeuronTune takes 2 s and DFR 1 s in seed 0, 4 s and 2 s in seed 1."""
    table = []
    for seed, scale in ((0, 1.0), (1, 2.0)):
        for method, wga, seconds, labels in (("erm", 0.5, 10.0, "none"), ("class_balanced_retrain", 0.6, 1.5, "none"),
                                             ("neurontune", 0.8, 2.0, "none"), ("dfr", 0.9, 1.0, "val_groups"),
                                             ("group_balanced_oracle", 0.95, 1.0, "val_groups")):
            table.append({"benchmark": "colored_mnist", "erm_mode": "finetune", "regime": "balanced", "seed": seed,
                          "method": method, "labels_used": labels, "worst_group_accuracy": wga + 0.1 * seed,
                          "mean_accuracy": 0.9, "worst_class_accuracy": 0.85, "n_masked": 0,
                          "method_seconds": seconds * scale, "erm_seconds": 10.0 * scale, "reference_seconds": 1.0 * scale,
                          "validity_erm_mean_accuracy": 0.9, "validity_erm_worst_group_accuracy": 0.5 + 0.1 * seed,
                          "validity_oracle_worst_group_accuracy": 0.95 + 0.01 * seed, "validity_headroom": 0.45 - 0.09 * seed,
                          "run_wall_seconds": 60.0, "run_id": f"run{seed}", "stage_erm_training_seconds": 10.0 * scale})
    return pd.DataFrame(table)


@pytest.fixture
def audited(rows):
    """The rows with mask quality for NeuronTune and a label-free method that falls below ERM in seed 1 only, where
    the guard fires; the guard also fires (wrongly) for NeuronTune in seed 0."""
    rows = rows.copy()
    masked = rows["method"] == "neurontune"
    rows.loc[masked, "mask_precision"] = [0.8, 1.0]
    rows.loc[masked, "mask_random_precision"] = 0.25
    rows.loc[masked, "mask_recall"] = [0.5, 0.7]
    rows.loc[masked, "mask_random_recall"] = 0.1
    rows.loc[masked, "mask_core_share"] = 0.0
    rows.loc[masked, "mask_random_core_share"] = 0.3
    rows.loc[masked, "mask_attribute_neurons"] = 8
    rows["guard_would_fire"] = np.where(rows["method"] == "erm", np.nan, 0.0)
    rows.loc[masked & (rows["seed"] == 0), "guard_would_fire"] = 1.0
    rows["guard_margin"] = 0.0
    retrain = rows["method"] == "class_balanced_retrain"
    rows.loc[retrain & (rows["seed"] == 1), ["worst_group_accuracy", "guard_would_fire"]] = [0.45, 1.0]
    return rows


def test_mask_quality_is_reported_beside_the_random_mask(audited):
    lines = "\n".join(runner.render_mask_quality(audited))
    assert "## Does the mask hit the shortcut?" in lines
    assert ("| colored_mnist | finetune | balanced | neurontune | 0.900 ± 0.141 | 0.250 ± 0.000 | 0.600 ± 0.141 | "
            "0.100 ± 0.000 | 0.000 ± 0.000 | 0.300 ± 0.000 | 8.0 | 0.0 |") in lines
    assert "| dfr |" not in lines and runner.render_mask_quality(audited.drop(columns="mask_precision")) == []


def test_harm_rate_and_the_guard_record(audited):
    table = runner.harm_table(audited).set_index("method")
    assert set(table.index) == {"neurontune", "class_balanced_retrain"}  # label-free methods only
    retrain = table.loc["class_balanced_retrain"]
    assert retrain["n_below"] == 1 and retrain["worst_delta"] == pytest.approx(-0.15)
    assert retrain["n_fired"] == 1 and retrain["n_right"] == 1 and retrain["saved"] == pytest.approx(0.15)
    neurontune = table.loc["neurontune"]
    assert neurontune["n_below"] == 0 and neurontune["n_wrong"] == 1 and neurontune["cost"] == pytest.approx(0.3)
    report = "\n".join(runner.render_harm(audited))
    assert "| colored_mnist | finetune | balanced | class_balanced_retrain | 1 / 2 | -0.150 | -0.025 |" in report
    assert "| colored_mnist | finetune | balanced | neurontune | 1 / 2 | 0 | 1 | 0 | 0.000 | 0.300 | -0.300 |" in report
    assert "the guard fired in 2 of 4 method-seeds, rightly in 1, wrongly in 1, and missed 0" in report
    old = "\n".join(runner.render_harm(audited.drop(columns=["guard_would_fire", "guard_margin"])))
    assert "## Harm rate" in old and "## The do-no-harm guard" not in old  # a runs.csv from before the guard


def test_summary_averages_seeds_and_ratios_within_each_run(rows):
    summary = runner.summarise(rows).set_index("method")
    assert list(summary.index) == ["erm", "neurontune", "class_balanced_retrain", "dfr", "group_balanced_oracle"]
    assert summary.loc["neurontune", "wga_mean"] == pytest.approx(0.85)
    assert summary.loc["neurontune", "wga_std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert summary.loc["neurontune", "ratio_to_reference"] == pytest.approx(2.0)
    assert summary.loc["dfr", "labels_used"] == "val_groups"


def test_paired_differences_pair_seeds(rows):
    paired = runner.paired_differences(rows).set_index(["method", "reference"])
    row = paired.loc[("neurontune", "class_balanced_retrain")]
    assert row["wga_diff_mean"] == pytest.approx(0.2) and row["wga_diff_std"] == pytest.approx(0.0)
    assert row["n_seeds"] == 2


def test_report_shows_validity_first_then_tables_and_timing(rows):
    meta = {"command": "python -m benchmarks.run", "finished": "now", "git_commit": "abc", "machine": "cpu",
            "n_runs": 2, "total_seconds": 120.0, "parent_run_id": "p", "experiment": "e", "failures": ["x / y: boom"]}
    report = runner.render_report(rows, meta, "plot.png")
    assert report.index("## Benchmark validity") < report.index("## colored_mnist — ERM finetune — balanced validation")
    assert "| colored_mnist | finetune | balanced | 2 | 0.900 ± 0.000 | 0.550 ± 0.071 |" in report
    assert "| separates methods |" in report
    assert "| dfr | val_groups | 0.950 ± 0.071 | 0.900 ± 0.000 | 0.850 ± 0.000 | 0.0 | 1.50 | 1.00 ± 0.00 |" in report
    assert "| neurontune − class_balanced_retrain | +0.200 ± 0.000 | [+0.200, +0.200] |" in report
    assert "x / y: boom" in report
    assert "| colored_mnist | finetune | balanced | 15.0 |" in report  # stage time: mean over runs, not method rows


def test_a_benchmark_without_headroom_is_flagged_in_the_report(rows):
    flat = rows.assign(validity_oracle_worst_group_accuracy=0.6, validity_headroom=0.05)
    assert "**this benchmark cannot separate debiasing methods**" in "\n".join(runner.render_validity(flat))


def test_plot_has_one_panel_per_benchmark_mode_and_regime(rows):
    doubled = pd.concat([rows, rows.assign(regime="correlated", run_id=rows["run_id"] + "c")])
    figure = runner.plot_worst_group_accuracy(doubled)
    assert len([axis for axis in figure.axes if axis.get_visible()]) == 2


def test_one_tiny_seed_end_to_end(tmp_path):
    """The runner on the suite's `ci` environment: one seed, one regime, every registered method reported."""
    project = tmp_path / "project"
    for name in ("conf", "src"):
        shutil.copytree(PROJECT_ROOT / name, project / name, ignore=shutil.ignore_patterns("local", "__pycache__"))
    shutil.copy2(PROJECT_ROOT / "pyproject.toml", project / "pyproject.toml")
    (project / "conf" / "local").mkdir()
    arguments = ["--benchmarks", "ci", "--project-path", str(project), "--output", str(tmp_path / "results"),
                 "--seeds", "1", "--regimes", "balanced", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    assert runner.main(arguments) == 0
    runs = pd.read_csv(tmp_path / "results" / "runs.csv")
    assert set(runs["method"]) == {*runner.method_nodes(), runner.AUTO}
    auto = runs[runs["method"] == runner.AUTO].iloc[0]  # the chosen method's numbers under the name auto
    chosen = runs[runs["method"] == auto["auto_choice"]].iloc[0]
    assert auto["worst_group_accuracy"] == chosen["worst_group_accuracy"] and auto["labels_used"] == "none"
    assert runs["method_seconds"].notna().all() and (runs["method_seconds"] > 0).all()
    assert runs["validity_headroom"].notna().all()
    assert not (project / "data" / "ci").exists() and (project / "data" / "benchmark_runs" / "ci").is_dir()
    report = (tmp_path / "results" / "REPORT.md").read_text()
    assert "| group_balanced_oracle | val_groups |" in report and "## Benchmark validity" in report
    assert "## Does the mask hit the shortcut?" in report and "## The do-no-harm guard" in report
    assert runs.loc[runs["method"] == "neurontune", "mask_recall"].notna().all()
    assert runs.loc[runs["method"] == "neurontune", "guard_margin"].eq(0.0).all()
    assert (tmp_path / "results" / "worst_group_accuracy.png").stat().st_size > 0


def test_the_lever_ablation_lists_each_lever_and_the_cost_ratio(rows):
    plus = rows[rows["method"] == "neurontune"].assign(method="neurontune_plus", method_seconds=lambda t: t["method_seconds"] * 1.5)
    lever = rows[rows["method"] == "neurontune"].assign(method="plus_lever_errors")
    lines = "\n".join(runner.render_lever_ablation(pd.concat([rows, plus, lever])))
    assert "| neurontune_plus | all four levers |" in lines and "| plus_lever_errors |" in lines
    assert "`neurontune_plus` / `neurontune`, per run: 1.50 ± 0.00" in lines


def test_a_benchmark_without_group_labels_says_why_instead_of_a_wga(rows):
    """Runs on data without group labels: no WGA, no validity card, labelled baselines not fitted — each says why."""
    note = "not measurable: no group labels"
    unlabelled = rows.assign(worst_group_accuracy=np.nan, wga_note=note, validity_erm_worst_group_accuracy=np.nan,
                             validity_oracle_worst_group_accuracy=np.nan, validity_headroom=np.nan, validity_note=note)
    unlabelled.loc[unlabelled["labels_used"] == "val_groups", "wga_note"] = "not fitted: no validation group labels"
    meta = {"command": "c", "finished": "now", "git_commit": "abc", "machine": "cpu", "n_runs": 2, "total_seconds": 1.0,
            "parent_run_id": "p", "experiment": "e"}
    report = runner.render_report(unlabelled, meta, "plot.png")
    assert f"| neurontune | none | {note} | 0.900 ± 0.000 | 0.850 ± 0.000 |" in report
    assert "| dfr | val_groups | not fitted: no validation group labels | 0.900 ± 0.000 |" in report
    assert f"| n/a | n/a | n/a | **{note}** |" in report
    assert "## Harm rate" not in report and "[+nan" not in report
    assert f"Mask precision and recall: {note} (finding attribute neurons needs the attribute)." in report
    axis = runner.plot_worst_group_accuracy(unlabelled).axes[0]
    assert axis.get_title().endswith(f"WGA {note}")
