"""The benchmark runner: run parameters, the report's arithmetic, and (slow) one tiny end-to-end run."""

import shutil

import numpy as np
import pandas as pd
import pytest

from benchmarks import run as runner
from tests.conftest import PROJECT_ROOT


def test_each_seed_changes_data_erm_split_regulation_and_baselines():
    params = runner.seed_parameters(7, 0.95)
    for name in ("data_versioning.seed", "erm_training.seed", "neurontune_regulation.tuning.seed",
                 "neuron_identification.selection_split.seed", "baselines.settings.seed"):
        assert params[name] == 7
    assert params["data_versioning.val_correlation"] == 0.95


def test_benchmarks_map_to_kedro_environments():
    command = runner.kedro_command(runner.BENCHMARK_ENVS["waterbirds_like"], {"a.b": 1}, ["c=2"])
    assert command[-4:] == ["--env", "waterbirds_like", "--params", "a.b=1,c=2"]
    assert "--env" not in runner.kedro_command(runner.BENCHMARK_ENVS["colored_mnist"], {"a": 1}, [])


def test_unknown_regimes_are_rejected():
    with pytest.raises(SystemExit):
        runner.parse_arguments(["--regimes", "balanced,sideways"])


@pytest.fixture
def rows():
    """Two seeds of three methods; NeuronTune takes 2 s and ERM 10 s in seed 0, 4 s and 20 s in seed 1."""
    table = []
    for seed, scale in ((0, 1.0), (1, 2.0)):
        for method, wga, seconds, labels in (("erm", 0.5, 10.0, "none"), ("neurontune", 0.8, 2.0, "none"),
                                             ("dfr", 0.9, 1.0, "val_groups")):
            table.append({"benchmark": "colored_mnist", "regime": "balanced", "seed": seed, "method": method,
                          "labels_used": labels, "worst_group_accuracy": wga + 0.1 * seed, "mean_accuracy": 0.9,
                          "worst_class_accuracy": 0.85, "n_masked": 0, "method_seconds": seconds * scale,
                          "erm_seconds": 10.0 * scale, "neurontune_seconds": 2.0 * scale,
                          "run_wall_seconds": 60.0, "run_id": f"run{seed}", "stage_erm_training_seconds": 10.0 * scale})
    return pd.DataFrame(table)


def test_summary_averages_seeds_and_ratios_within_each_run(rows):
    summary = runner.summarise(rows).set_index("method")
    assert list(summary.index) == ["erm", "neurontune", "dfr"]  # report order, not file order
    assert summary.loc["neurontune", "wga_mean"] == pytest.approx(0.85)
    assert summary.loc["neurontune", "wga_std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert summary.loc["dfr", "ratio_to_neurontune"] == pytest.approx(0.5)
    assert summary.loc["erm", "neurontune_to_erm"] == pytest.approx(0.2)
    assert summary.loc["dfr", "labels_used"] == "val_groups"


def test_report_has_one_table_row_per_method_and_the_timing_line(rows):
    meta = {"command": "python -m benchmarks.run", "finished": "now", "git_commit": "abc", "machine": "cpu",
            "n_runs": 2, "total_seconds": 120.0, "parent_run_id": "p", "experiment": "e", "failures": ["x / y: boom"]}
    report = runner.render_report(rows, meta, "plot.png")
    assert "## colored_mnist — balanced validation" in report
    assert "| dfr | val_groups | 0.950 ± 0.071 | 0.900 ± 0.000 | 0.850 ± 0.000 | 0.0 | 1.50 |" in report
    assert "= 0.200 ± 0.000 × ERM training" in report
    assert "x / y: boom" in report
    assert "| benchmark | regime | erm_training |" in report
    assert "| colored_mnist | balanced | 15.0 |" in report  # stage time: mean over runs, not over method rows


def test_plot_has_one_panel_per_benchmark_and_regime(rows):
    doubled = pd.concat([rows, rows.assign(regime="correlated")])
    figure = runner.plot_worst_group_accuracy(doubled)
    assert len(figure.axes) == 2


@pytest.mark.slow  # one real kedro run: ~50 s on idle cores, 3 min on a loaded machine; pieces above are fast
def test_one_tiny_seed_end_to_end(tmp_path):
    project = tmp_path / "project"
    for name in ("conf", "src"):
        shutil.copytree(PROJECT_ROOT / name, project / name, ignore=shutil.ignore_patterns("local", "__pycache__"))
    shutil.copy2(PROJECT_ROOT / "pyproject.toml", project / "pyproject.toml")
    (project / "conf" / "local").mkdir()
    reduced = ["data_versioning.split_sizes.train=400", "data_versioning.split_sizes.val=200",
               "data_versioning.split_sizes.test=200", "erm_training.modes.finetune.epochs=2",
               "neurontune_regulation.tuning.grid.threshold=[0.0]", "neurontune_regulation.tuning.grid.rule=[all]",
               "neurontune_regulation.tuning.grid.weight_decay=[0.001]", "baselines.methods.dfr.n_refits=2",
               "baselines.methods.dfr_groupfree.n_refits=2", "baselines.methods.jtt_last_layer.upweights=[5.0]",
               "baselines.methods.afr.gammas=[2.0]"]
    arguments = ["--project-path", str(project), "--output", str(tmp_path / "results"), "--seeds", "1",
                 "--regimes", "balanced", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    assert runner.main(arguments + [f"--params={pair}" for pair in reduced]) == 0
    runs = pd.read_csv(tmp_path / "results" / "runs.csv")
    assert set(runs["method"]) == set(runner.METHOD_NODES)
    assert runs["method_seconds"].notna().all() and (runs["method_seconds"] > 0).all()
    report = (tmp_path / "results" / "REPORT.md").read_text()
    assert "| group_balanced_oracle | val_groups |" in report
    assert (tmp_path / "results" / "worst_group_accuracy.png").stat().st_size > 0
