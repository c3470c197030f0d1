"""The parameter schemas: every environment validates; typos, wrong types and ranges are named with the file
that set them; a real `kedro run` with bad parameters stops before anything is written."""

import copy
import shutil

import pytest
import yaml

from neurontune.core.head import SOLVERS
from neurontune.exit_codes import BAD_INPUT
from neurontune.core.roles import ScoringRole
from neurontune.methods import baseline_options_model, complete_variant, load_registry, resolve_function, scoring_role
from neurontune.methods import validate_run as validate_parameters
from neurontune.parameters import Baseline, InvalidParameters, Parameters, ParameterSources
from tests.conftest import PROJECT_ROOT, copy_project, kedro
from tests.pipelines.conftest import environment_parameters

ENVIRONMENTS = sorted(path.name for path in (PROJECT_ROOT / "conf").iterdir()
                      if path.is_dir() and path.name not in ("base", "local"))


@pytest.mark.parametrize("env", [None, *ENVIRONMENTS])
def test_every_environment_validates(env):
    model = validate_parameters(environment_parameters(env), registry=load_registry())
    assert model.data_versioning.name == (environment_parameters(env)["data_versioning"]["name"])


def test_every_block_of_conf_base_has_a_schema():
    blocks = set()
    for path in (PROJECT_ROOT / "conf" / "base").glob("parameters*.yml"):
        blocks |= set(yaml.safe_load(path.read_text()))
    assert blocks == set(Parameters.model_fields)


def ci_with(change) -> dict:
    parameters = copy.deepcopy(environment_parameters("ci"))
    change(parameters)
    return parameters


def problems(parameters, **kwargs) -> str:
    with pytest.raises(InvalidParameters) as raised:
        validate_parameters(parameters, **kwargs)
    return str(raised.value)


CASES = {
    "typo": (lambda p: p["neuron_identification"]["selection"].update(treshold=0.5),
             "neuron_identification.selection.treshold: unknown key; did you mean 'threshold'?"),
    "text_threshold": (lambda p: p["neuron_identification"]["selection"].update(threshold="abc"),
                       "neuron_identification.selection.threshold: must be a number; got 'abc'"),
    "text_fraction": (lambda p: p["neuron_identification"]["selection_split"].update(ide_fraction="abc"),
                      "neuron_identification.selection_split.ide_fraction: must be a number; got 'abc'"),
    "fraction_range": (lambda p: p["neuron_identification"]["selection_split"].update(ide_fraction=1.0),
                       "neuron_identification.selection_split.ide_fraction: must be < 1.0; got 1.0"),
    "gate_typo": (lambda p: p["model_promotion"]["gate"].update(min_delt=0.1),
                  "model_promotion.gate.min_delt: unknown key; did you mean 'min_delta'?"),
    "gate_negative": (lambda p: p["model_promotion"]["gate"].update(min_delta=-0.1),
                      "model_promotion.gate.min_delta: must be >= 0.0; got -0.1"),
    "block_typo": (lambda p: p.update(neuron_identifcation={}),
                   "neuron_identifcation: unknown key; did you mean 'neuron_identification'?"),
    "benchmark_name": (lambda p: p["data_versioning"].update(name="waterbird_like"),
                       "data_versioning.name: must be one of ['colored_mnist', 'waterbirds_like'"),
    "correlation_range": (lambda p: p["data_versioning"].update(val_correlation=1.5),
                          "data_versioning.val_correlation: must be <= 1.0; got 1.5"),
    "architecture": (lambda p: p["erm_training"]["model"].update(architecture="resnet"),
                     "erm_training.model.architecture: must be one of ['small_cnn', 'efficientnet_lite0', 'resnet50', "
                     "'all_minilm_l6_v2', 'bert_base_uncased']; got 'resnet'; did you mean 'resnet50'?"),
    "backbone_key": (lambda p: p["erm_training"]["model"].update(widht=8),
                     "erm_training.model.widht: unknown key; did you mean 'width'?"),
    "solver": (lambda p: p["neurontune_regulation"]["tuning"].update(retrain={"solver": "adam"}),
               f"neurontune_regulation.tuning.retrain.solver: must be one of {list(SOLVERS)}; got 'adam'"),
    "bool": (lambda p: p["neurontune_regulation"]["tuning"].update(init_from_erm="yes"),
             "neurontune_regulation.tuning.init_from_erm: must be true or false; got 'yes'"),
    "empty_grid": (lambda p: p["neurontune_regulation"]["tuning"]["grid"].update(threshold=[]),
                   "neurontune_regulation.tuning.grid.threshold: must be non-empty; got []"),
    "lever": (lambda p: p["neurontune_regulation"]["variants"]["neurontune"].update(errors="oracle"),
              "neurontune_regulation.variants.neurontune.errors: must be one of ['erm', 'auto', 'early', 'crossfit', "
              "'loss_quantile']; got 'oracle'"),
    "variant_grid": (lambda p: p["neurontune_regulation"]["variants"]["neurontune"].update(grid={"rules": ["any"]}),
                     "neurontune_regulation.variants.neurontune.grid.rules: unknown key; did you mean 'rule'?"),
    "baseline_option": (lambda p: p["baselines"]["methods"]["dfr"]["options"].update(c_gird=[1.0]),
                        "baselines.methods.dfr.options.c_gird: unknown key; did you mean 'c_grid'?"),
    "baseline_option_type": (lambda p: p["baselines"]["methods"]["dfr"]["options"].update(n_refits="3"),
                             "baselines.methods.dfr.options.n_refits: must be an integer; got '3'"),
    "baseline_retrain_option": (lambda p: p["baselines"]["methods"]["jtt_last_layer"]["options"].update(solver="adam"),
                                f"baselines.methods.jtt_last_layer.options.solver: must be one of {list(SOLVERS)}"),
    "baseline_function": (lambda p: p["baselines"]["methods"]["afr"].update(function="afrr"),
                          "baselines.methods.afr.function: baseline function 'afrr' not found"),
    "oracle": (lambda p: p["evaluation"]["validity"].update(oracle="oracle"),
               "evaluation.validity.oracle: must name a registered method"),
    "packaged_method": (lambda p: p["model_promotion"]["packaging"].update(method="neurotune"),
                        "model_promotion.packaging.method: must name a registered method"),
    "model_name": (lambda p: p["model_promotion"]["packaging"].update(registered_model_name="nt-{bench}"),
                   "model_promotion.packaging.registered_model_name: may use only the fields {benchmark} and {source}"),
    "n_classes": (lambda p: p["erm_training"]["model"].update(n_classes=3),
                  "erm_training.model.n_classes: must equal data_versioning.n_classes (2); got 3"),
    "linear_probe": (lambda p: p["erm_training"].update(mode="linear_probe"),
                     "erm_training.mode: linear_probe needs a pretrained backbone; 'small_cnn' starts from random weights"),
    "threads": (lambda p: p["runtime"].update(threads=0), "runtime.threads: must be >= 1; got 0"),
    "device": (lambda p: p["embedding_caching"].update(device="gpu"), "embedding_caching.device: must be matching"),
    "missing": (lambda p: p["erm_training"].pop("early_checkpoint_epoch"), "erm_training.early_checkpoint_epoch: missing"),
    "mode": (lambda p: p["erm_training"].update(mode="frozen"),
             "erm_training.mode: must be one of ['finetune', 'linear_probe']; got 'frozen'"),
    "mode_block": (lambda p: p["erm_training"].update(modes={"linear_probe": p["erm_training"]["modes"]["finetune"]}),
                   "erm_training.modes.finetune: missing: erm_training.mode is 'finetune', so erm_training.modes.finetune "
                   "must set ['epochs', 'learning_rate', 'weight_decay', 'batch_size']; found blocks ['linear_probe']"),
    "mode_key": (lambda p: p["erm_training"]["modes"].update(frozen=p["erm_training"]["modes"]["finetune"]),
                 "erm_training.modes.frozen: must be one of ['finetune', 'linear_probe']; got 'frozen'"),
    "mode_block_key": (lambda p: p["erm_training"]["modes"]["finetune"].update(lr=0.1),
                       "erm_training.modes.finetune.lr: unknown key (valid here: batch_size, epochs, learning_rate, weight_decay)"),
    "mode_block_null": (lambda p: p["erm_training"]["modes"]["finetune"].update(batch_size=None),
                        "erm_training.modes.finetune.batch_size: must be an integer; got None"),
    "guard_criterion": (lambda p: p["harm_guard"].update(criterion="group"),
                        "harm_guard.criterion: must be one of ['class', 'own']; got 'group'"),
    "guard_margin": (lambda p: p["harm_guard"].update(margin="0.01"), "harm_guard.margin: must be a number; got '0.01'"),
    "auroc_threshold": (lambda p: p["evaluation"]["mask_quality"].update(auroc_threshold=0.4),
                        "evaluation.mask_quality.auroc_threshold: must be > 0.5; got 0.4"),
    "gallery": (lambda p: p["mask_evidence"]["gallery"].update(n_neurons=0),
                "mask_evidence.gallery.n_neurons: must be >= 1; got 0"),
    "distributed": (lambda p: p["erm_training"]["distributed"].update(nnodes=2),
                    "erm_training.distributed: several nodes need a shared erm_training.distributed.rdzv_id"),
    "distributed_key": (lambda p: p["erm_training"]["distributed"].update(nproc=2),
                        "erm_training.distributed: erm_training.distributed has unknown key(s) ['nproc']"),
    "epochs_huge": (lambda p: p["erm_training"]["modes"]["finetune"].update(epochs=10**9),  # issue 28: accepted before
                    "erm_training.modes.finetune.epochs: must be <= 10000; got 1000000000"),
    "moved": (lambda p: p["erm_training"].update(epochs=500),
              "erm_training.epochs: no longer read: it moved to erm_training.modes.<mode>.epochs"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_parameter_is_named_with_its_value(case):
    change, message = CASES[case]
    assert message in problems(ci_with(change))


def test_every_problem_is_reported_at_once():
    def change(parameters):
        for case in ("typo", "text_threshold", "text_fraction", "gate_typo"):
            CASES[case][0](parameters)

    report = problems(ci_with(change), env="ci")
    assert report.startswith("4 invalid parameter(s) of environment 'ci' (nothing was run):")
    assert all(CASES[case][1] in report for case in ("typo", "text_threshold", "text_fraction", "gate_typo"))


def test_an_unused_base_key_must_be_unset_in_a_benchmark():
    parameters = environment_parameters("waterbirds")
    parameters["data_versioning"]["val_correlation"] = 0.95  # e.g. the benchmark runner's correlated regime
    assert ("data_versioning.val_correlation: colored_mnist's validation correlation; not read here, so it must be "
            "null (unset); got 0.95") in problems(parameters)


def test_an_environment_cannot_add_a_method():
    parameters = ci_with(lambda p: p["neurontune_regulation"]["variants"].update(neurotune={"tune_set": "train", "use_mask": True}))
    assert ("neurontune_regulation.variants.neurotune: not a method of the registry in conf/base"
            in problems(parameters, registry=load_registry()))


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))


def test_each_problem_names_the_file_that_set_the_key(tmp_path):
    conf = tmp_path / "conf"
    write(conf / "base" / "parameters_neuron_identification.yml",
          {"neuron_identification": {"selection": {"threshold": 0.0, "rule": "all"}, "selection_split": {"ide_fraction": 0.5}}})
    write(conf / "ci" / "parameters.yml", {"neuron_identification": {"selection": {"rule": "some"}}})
    write(conf / "ci" / "nested" / "parameters_extra.yml", {"model_promotion": {"gate": {"min_delt": 0.1}}})
    sources = ParameterSources.from_config(conf, "ci", {"neuron_identification": {"selection": {"threshold": "abc"}}})
    assert sources.origin(("neuron_identification", "selection", "threshold")) == "--params"
    assert sources.origin(("neuron_identification", "selection", "rule")) == "conf/ci/parameters.yml"
    assert sources.origin(("neuron_identification", "selection_split", "ide_fraction")) == \
        "conf/base/parameters_neuron_identification.yml"
    assert sources.origin(("model_promotion", "gate", "min_delt")) == "conf/ci/nested/parameters_extra.yml"
    assert sources.origin(("neuron_identification", "scoring", "seed")) == \
        "conf/base/parameters_neuron_identification.yml, which sets neuron_identification"
    assert sources.files_setting("neuron_identification") == ["conf/ci/parameters.yml",
                                                              "conf/base/parameters_neuron_identification.yml"]

    def change(parameters):
        parameters["neuron_identification"]["selection"].update(threshold="abc", rule="some")
        parameters["model_promotion"]["gate"]["min_delt"] = 0.1

    report = problems(ci_with(change), sources=sources, env="ci")
    assert "neuron_identification.selection.threshold: must be a number; got 'abc' (set by --params)" in report
    assert ("neuron_identification.selection.rule: must be one of ['all', 'any', 'per_class']; got 'some' "
            "(set in conf/ci/parameters.yml)") in report
    assert "model_promotion.gate.min_delt: unknown key; did you mean 'min_delta'?" in report
    assert report.rstrip().endswith("(set in conf/ci/nested/parameters_extra.yml)")


def test_variant_levers_default_to_the_papers_choices():
    assert complete_variant({"tune_set": "train", "use_mask": True}) == {
        "tune_set": "train", "use_mask": True, "identify_on": "val_ide", "errors": "erm", "statistic": "median",
        "relu_before_scoring": False, "criterion": "class", "balance": "class", "pseudo_groups": "same", "grid": {}}
    assert scoring_role("val_ide", complete_variant({"tune_set": "train", "use_mask": True})) == \
        ScoringRole.parse("val_ide.erm.median")


def test_every_registered_method_has_complete_settings():
    for name, method in load_registry().items():
        if method.kind == "neurontune":
            assert set(method.settings) == {"tune_set", "use_mask", "identify_on", "errors", "statistic",
                                            "relu_before_scoring", "criterion", "balance", "pseudo_groups", "grid"}, name
        elif method.kind == "baseline":  # every option the function takes, its defaults filled in
            model = baseline_options_model(resolve_function(method.settings["function"]))
            required = {key for key, field in model.model_fields.items() if field.default is not None}
            assert required <= set(method.settings["options"]), name


def test_a_baseline_default_lives_in_its_function_not_in_the_yaml():
    for name, entry in yaml.safe_load((PROJECT_ROOT / "conf" / "base" / "parameters_baselines.yml").read_text())[
            "baselines"]["methods"].items():
        model = baseline_options_model(resolve_function(entry["function"]))
        repeated = {key for key, value in (entry.get("options") or {}).items() if model.model_fields[key].default == value}
        assert not repeated, f"{name} repeats its function's defaults {sorted(repeated)} in conf/base"


def test_the_retrain_defaults_live_in_retrain_head_only():
    from neurontune.core.estimator import NeuronTune
    from neurontune.core.head import RETRAIN_DEFAULTS
    from neurontune.parameters import Retrain

    assert NeuronTune().get_params() | RETRAIN_DEFAULTS == NeuronTune().get_params()
    assert Retrain().model_dump() == {key: RETRAIN_DEFAULTS[key] for key in Retrain.model_fields}
    for block in ("parameters_neurontune_regulation.yml", "parameters_baselines.yml"):
        assert "retrain:\n" not in (PROJECT_ROOT / "conf" / "base" / block).read_text().replace("# retrain", ""), block


def test_baseline_options_are_the_functions_keyword_arguments():
    for name, entry in environment_parameters(None)["baselines"]["methods"].items():
        model = baseline_options_model(resolve_function(Baseline.model_validate(entry).function))
        assert set(entry["options"]) <= set(model.model_fields), name
        assert not {"tune_embeddings", "tune_y", "sel_y", "n_classes", "seed", "tune_early_logits"} & set(model.model_fields), name
    jtt = baseline_options_model(resolve_function("jtt_last_layer")).model_fields  # **retrain_options → retrain_head
    assert {"upweights", "weight_decays", "solver", "max_iter"} <= set(jtt) and "device" not in jtt


# ----------------------------------------------------------------------------- a real `kedro run`


@pytest.fixture(scope="module")
def ran_project(ci_project, tmp_path_factory):
    """A copy of the suite's ci project with every output of its run (and no tracking store)."""
    project = copy_project(tmp_path_factory.mktemp("params_project"))
    shutil.copytree(ci_project / "data", project / "data", dirs_exist_ok=True)
    return project


def squeezed(text: str) -> str:
    """Without whitespace: rich wraps long lines, even inside a word."""
    return "".join(text.split())


def snapshot(project):
    return {path: (path.stat().st_mtime_ns, path.stat().st_size) for path in project.rglob("*")
            if path.is_file() and "conf" not in path.parts and "src" not in path.parts}


def test_bad_runtime_parameters_stop_the_run_before_anything_is_written(ran_project):
    """The issue's cases: `threshold=abc` once overwrote neuron_scores.png with a plot labelled "λ = abc"."""
    before = snapshot(ran_project)
    plot = ran_project / "data" / "ci" / "08_reporting" / "neuron_scores.png"
    assert plot.is_file()
    result = kedro(ran_project, "run", "--env", "ci", "--pipelines", "neuron_identification", "--params",
                   "neuron_identification.selection.threshold=abc,neuron_identification.selection_split.ide_fraction=abc,"
                   "neuron_identification.selection.treshold=0.5", check=False)
    output = squeezed(result.stdout + result.stderr)
    assert result.returncode != 0
    for message in ("3 invalid parameter(s) of environment 'ci' (nothing was run)",
                    "neuron_identification.selection.threshold: must be a number; got 'abc' (set by --params)",
                    "neuron_identification.selection_split.ide_fraction: must be a number; got 'abc' (set by --params)",
                    "neuron_identification.selection.treshold: unknown key; did you mean 'threshold'? (valid here: rule, "
                    "threshold) (set by --params)"):
        assert squeezed(message) in output, message
    assert snapshot(ran_project) == before  # neuron_scores.png included; no mlflow.db either
    assert not (ran_project / "mlflow.db").exists()


def test_a_typo_in_a_conf_file_names_the_file(ran_project):
    parameters = ran_project / "conf" / "ci" / "parameters.yml"
    original = parameters.read_text()
    before = snapshot(ran_project)
    try:
        # conf/ci/parameters.yml has a model_promotion block already (the ci model's name): the typo goes inside it
        parameters.write_text(original.replace("model_promotion:\n", "model_promotion:\n  gate:\n    min_delt: 0.1\n", 1))
        result = kedro(ran_project, "run", "--env", "ci", "--pipelines", "model_promotion", check=False)
    finally:
        parameters.write_text(original)
    output = squeezed(result.stdout + result.stderr)
    assert result.returncode == BAD_INPUT
    assert squeezed("model_promotion.gate.min_delt: unknown key; did you mean 'min_delta'? (valid here: dry_run, "
                    "fail_on_refusal, max_mean_acc_drop, metric, min_delta, require_same_data, split) (set in "
                    "conf/ci/parameters.yml)") in output
    assert snapshot(ran_project) == before and not (ran_project / "mlflow.db").exists()


def custom_with(change) -> dict:
    parameters = copy.deepcopy(environment_parameters("custom"))
    change(parameters)
    return parameters


@pytest.mark.parametrize("change, message", [
    (lambda p: p["erm_training"].update(source="resnet18"), "erm_training.source: Value error, erm_training.source 'resnet18' is not understood"),
    (lambda p: p["data_versioning"].update(classes=["cat", "dog", "cow"]), "data_versioning.classes: names 3 classes but data_versioning.n_classes is 2"),
    (lambda p: p["erm_training"].update(source="precomputed"), "erm_training.source: must be 'precomputed' exactly when"),
    (lambda p: p["data_versioning"].update(modality="embeddings"), "erm_training.source: must be 'precomputed' exactly when"),
    (lambda p: p["erm_training"]["imported"]["preprocessing"].update(mean=[0.5]), "erm_training.imported.preprocessing.mean: must be at least 3 long"),
    (lambda p: p["model_promotion"]["packaging"].update(registered_model_name="{model}-x"), "may use only the fields {benchmark} and {source}"),
])
def test_the_custom_template_checks_its_keys(change, message):
    assert message in problems(custom_with(change))


def test_an_imported_source_does_not_need_the_training_backbone_to_match_the_classes():
    parameters = custom_with(lambda p: p["data_versioning"].update(classes=["a", "b", "c"], n_classes=3))
    assert validate_parameters(parameters).erm_training.source == "models:/my-classifier@production"
