"""The method registry: every evaluated method is declared once, in configuration.

- NeuronTune variants: entries of ``neurontune_regulation.variants``
  (``conf/base/parameters_neurontune_regulation.yml``): the tuning set, whether the mask
  is used, and optionally their own levers, grid and selection criterion.
- Baselines: entries of ``baselines.methods`` (``conf/base/parameters_baselines.yml``):
  the core function, the labels it uses, the tuning set and its options (grids).
- ``erm`` is the reference every method starts from.

The registry hands out *complete, validated* settings: :func:`complete_parameters` fills every lever a
variant leaves out (the schema's defaults, :class:`neurontune.parameters.Variant`) and every option a
baseline leaves out (its function's signature), so nodes never fill defaults; the session hook installs
those parameters before any node runs. The regulation and baselines pipelines, evaluation, model
promotion, the labels table, ``dvc.yaml`` and the benchmark runner derive their method lists from
:func:`load_registry`. Methods are declared in ``conf/base``; a Kedro environment may change their
settings (grids, options) but not add or remove methods.

Layering: this module sits above :mod:`neurontune.parameters` (the schemas) and below tracking and the
pipelines; it imports neither.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Mapping

import yaml
from pydantic import Field, ValidationError, create_model

from neurontune.core.baselines import BaselineInputs
from neurontune.core.head import RETRAIN_SETTINGS
from neurontune.core.roles import ScoringRole
from neurontune.parameters import (
    BASELINE_TUNE_SETS,
    LABEL_KINDS,
    REFERENCE,
    VARIANT_TUNE_SETS,
    Baseline,
    InvalidParameters,
    NonNegativeFloat,
    Parameters,
    ParameterSources,
    Problem,
    Retrain,
    Schema,
    Variant,
    _annotation,
    _hint,
    completed,
    problems_of,
    validate_block,
    validate_parameters,
)

__all__ = ["BASELINE_TUNE_SETS", "LABEL_KINDS", "REFERENCE", "VARIANT_TUNE_SETS", "Method", "complete_parameters",
           "load_registry", "registry_from_parameters", "resolve_function", "validate_run"]

#: Keys of metrics.json that are report sections, not methods.
VALIDITY = "validity"
#: does each mask hit the shortcut (neurons' attribute AUROC; evaluation), and the do-no-harm report
MASK_QUALITY = "mask_quality"
HARM = "harm"
METHOD_CHOICE = "method_choice"
ERROR_SET_QUALITY = "error_set_quality"
REPORT_SECTIONS = (VALIDITY, MASK_QUALITY, HARM, METHOD_CHOICE, ERROR_SET_QUALITY)
#: Module holding the functions a baseline entry names without a dotted path.
BASELINES_MODULE = "neurontune.core.baselines"


@dataclass(frozen=True)
class Method:
    """One evaluated method.

    Attributes
    ----------
    name : the method's name in every table, plot and file
    kind : ``reference`` (ERM), ``neurontune`` (a NeuronTune variant) or ``baseline``
    stage : the pipeline that fits it (its Kedro namespace)
    labels_used : one of :data:`LABEL_KINDS`
    tune_set : the data its head is fitted on (None for ERM)
    uses_mask : whether it suppresses neurons (a NeuronTune variant with ``use_mask: true``)
    settings : its complete, validated registry entry (every lever or option filled in)
    """

    name: str
    kind: str
    stage: str
    labels_used: str
    tune_set: str | None
    uses_mask: bool = False
    settings: Mapping = field(default_factory=dict, compare=False)

    @property
    def head_dataset(self) -> str:
        """Catalog name of its head."""
        return "erm_head" if self.kind == "reference" else f"{self.stage}.{self.name}_head"

    @property
    def candidates_dataset(self) -> str | None:
        """Catalog name of its candidate table (None for ERM)."""
        return None if self.kind == "reference" else f"{self.stage}.{self.name}_candidates"

    @property
    def node_name(self) -> str:
        """The (namespaced) node that fits it."""
        if self.kind == "reference":
            return "train_erm_model"
        return f"{self.stage}.{'regulate' if self.kind == 'neurontune' else 'fit'}_{self.name}"


# ----------------------------------------------------------------------------- complete settings


def complete_variant(entry: Mapping, path: tuple = ("neurontune_regulation", "variants")) -> dict:
    """A variant entry checked against :class:`Variant`, with every lever it leaves out set to the paper's choice."""
    return completed(validate_block(Variant, dict(entry), path), dict(entry))


def complete_baseline(entry: Mapping, path: tuple = ("baselines", "methods")) -> dict:
    """A baseline entry checked against :class:`Baseline` and its function's signature, with every option it leaves
    out set to the function's default."""
    baseline = validate_block(Baseline, dict(entry), path)
    options = dict(entry.get("options") or {})
    try:
        model = baseline_options_model(resolve_function(baseline.function))
    except ValueError as error:
        raise InvalidParameters([Problem((*path, "function"), str(error))]) from None
    validate_block(model, options, (*path, "options"))
    return {**completed(baseline, dict(entry)), "options": completed(model.model_validate(options), options)}


def complete_parameters(parameters: dict) -> dict:
    """``parameters`` with every block's omitted keys set to their schema defaults and every registered method's
    settings complete: what the session hands the nodes (and tests feed an in-memory catalog)."""
    model = Parameters.model_validate(parameters)
    result = completed(model, parameters)
    regulation, baselines = result["neurontune_regulation"], result["baselines"]
    regulation["variants"] = {name: complete_variant(entry, ("neurontune_regulation", "variants", name))
                              for name, entry in parameters["neurontune_regulation"]["variants"].items()}
    baselines["methods"] = {name: complete_baseline(entry, ("baselines", "methods", name))
                            for name, entry in parameters["baselines"]["methods"].items()}
    return result


# ----------------------------------------------------------------------------- the registry


def registry_from_parameters(parameters: dict) -> dict[str, Method]:
    """The registry, in report order (ERM, the NeuronTune variants, the baselines), from merged parameters.

    Each entry is checked against its schema (:class:`Variant`, :class:`Baseline` and the function's options) and
    carries its complete settings.
    """
    variants = _section(parameters, "neurontune_regulation", "variants")
    baselines = _section(parameters, "baselines", "methods")
    methods = {REFERENCE: Method(REFERENCE, "reference", "embedding_caching", "none", None)}
    for name, entry in variants.items():
        settings = complete_variant(entry, ("neurontune_regulation", "variants", name))
        methods[name] = Method(name, "neurontune", "neurontune_regulation", "none", settings["tune_set"],
                               uses_mask=bool(settings["use_mask"]), settings=settings)
    for name, entry in baselines.items():
        settings = complete_baseline(entry, ("baselines", "methods", name))
        if name in methods:
            raise ValueError(f"method {name!r} is declared twice (a variant and a baseline); names must be unique.")
        methods[name] = Method(name, "baseline", "baselines", settings["labels_used"], settings["tune_set"],
                               settings=settings)
    return methods


def load_registry(project_path: Path | str | None = None) -> dict[str, Method]:
    """The registry declared in ``conf/base`` of the Kedro project at ``project_path``
    (default: found from the working directory, else this package's project).

    Reads the YAML files directly: building a second Kedro config loader here would replace the
    running session's ``globals`` resolver (OmegaConf resolvers are process-wide).
    """
    from kedro.utils import find_kedro_project

    root = Path(project_path) if project_path else (find_kedro_project(Path.cwd()) or Path(__file__).resolve().parents[2])
    parameters: dict = {}
    for path in sorted((root / "conf" / "base").glob("parameters*.yml")):
        parameters.update(yaml.safe_load(path.read_text()) or {})
    return registry_from_parameters(parameters)


def _section(parameters: dict, block: str, key: str) -> dict:
    section = (parameters.get(block) or {}).get(key)
    if not isinstance(section, dict) or not section:
        raise ValueError(f"the method registry needs a non-empty mapping {block}.{key} in "
                         f"conf/base/parameters_{block}.yml; got {section!r}.")
    return section


def method_entries(metrics: dict) -> dict:
    """The per-method part of a metrics report (``{method: {split: {metric: value}}}``), without report sections."""
    return {name: value for name, value in metrics.items() if name not in REPORT_SECTIONS}


# ----------------------------------------------------------------------------- validating a run


def validate_run(parameters: dict, sources: ParameterSources | None = None, env: str | None = None,
                 registry: Mapping[str, Method] | None = None) -> Parameters:
    """The run's parameters validated (:func:`neurontune.parameters.validate_parameters`) together with the registry's
    own checks: every baseline's options against its function's signature and, given ``registry`` (the methods of
    ``conf/base``), no method that ``conf/base`` does not declare (it would have no node)."""
    checks = [_baseline_problems] + ([_registered(registry)] if registry is not None else [])
    return validate_parameters(parameters, sources, env, checks=checks)


def _baseline_problems(model: Parameters, parameters: dict) -> list[Problem]:
    problems = []
    for name, baseline in model.baselines.methods.items():
        where = ("baselines", "methods", name)
        options = parameters["baselines"]["methods"][name].get("options") or {}
        try:
            options_model = baseline_options_model(resolve_function(baseline.function))
        except ValueError as error:
            problems.append(Problem((*where, "function"), str(error)))
            continue
        try:
            options_model.model_validate(options)
        except ValidationError as error:
            problems += problems_of(error, options_model, options, (*where, "options"))
    return problems


def _registered(registry: Mapping[str, Method]):
    def check(model: Parameters, parameters: dict) -> list[Problem]:
        problems = []
        for path, names in ((("neurontune_regulation", "variants"), model.neurontune_regulation.variants),
                            (("baselines", "methods"), model.baselines.methods)):
            problems += [Problem((*path, name), f"not a method of the registry in conf/base ({sorted(registry)}); an "
                                 f"environment may change a method's settings, not add one{_hint(name, registry)}")
                         for name in names if name not in registry]
        return problems

    return check


# ----------------------------------------------------------------------------- baseline functions


def resolve_function(reference: str):
    """A baseline function from its name in :data:`BASELINES_MODULE` or a dotted path ``package.module.function``."""
    module, _, attribute = reference.rpartition(".") if "." in reference else (BASELINES_MODULE, ".", reference)
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"baseline function {reference!r} not found ({error}); name a function of "
                         f"{BASELINES_MODULE} or give a dotted path.") from error


def baseline_options_model(function) -> type[Schema]:
    """The model of a baseline function's options: its keyword parameters other than the data it asks for
    (:class:`neurontune.core.baselines.BaselineInputs`' fields), typed by their annotation or, unannotated, by their
    default (a tuple default = a non-empty list of its items' type), defaulting to the function's defaults. A function
    taking ``**kwargs`` passes them on to ``retrain_head``: it also accepts the retraining settings."""
    try:
        hints = typing.get_type_hints(function)
    except (NameError, TypeError):  # an annotation that does not resolve: type by the defaults
        hints = {}
    data = BaselineInputs.field_names()
    fields, takes_any = {}, False
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            takes_any = True
        elif name not in data and parameter.kind is not inspect.Parameter.VAR_POSITIONAL:
            required = parameter.default is inspect.Parameter.empty
            default = list(parameter.default) if isinstance(parameter.default, tuple) else parameter.default
            fields[name] = (_option_type(hints.get(name), parameter.default), ... if required else default)
    if takes_any:
        for name in RETRAIN_SETTINGS:
            if name not in fields and name not in data and name != "device":
                field = Retrain.model_fields.get(name)
                fields[name] = (_annotation(field) if field else NonNegativeFloat, None)  # None: the run's settings
    return create_model(f"{function.__name__}_options", __base__=Schema, **fields)


def _option_type(hint, default) -> Any:
    if hint is not None and hint is not inspect.Parameter.empty:
        return hint
    if isinstance(default, bool):
        return bool
    if isinstance(default, (tuple, list)) and default:
        return Annotated[list[_option_type(None, default[0])], Field(min_length=1)]
    if isinstance(default, float):
        return float
    if isinstance(default, int):
        return int
    return Any


# ----------------------------------------------------------------------------- scoring roles of a variant


def scoring_role(rows: str, variant: Mapping) -> ScoringRole:
    """The scoring role a (complete) NeuronTune variant reads for identification rows ``rows``."""
    return ScoringRole(rows, variant["errors"], variant["statistic"], bool(variant["relu_before_scoring"]))


def mask_role(variant: Mapping) -> ScoringRole:
    """The scoring role a variant's final mask is selected from (all of validation when cross-fitted: its chosen
    configuration is refit there)."""
    return scoring_role("val_all" if variant["tune_set"] == "val_crossfit" else variant["identify_on"], variant)


def variant_roles(variant: Mapping) -> list[ScoringRole]:
    """Every scoring role a variant reads (its folds and, cross-fitted, its refit)."""
    if variant["tune_set"] == "val_crossfit":
        return [scoring_role(rows, variant) for rows in ("val_ide", "val_sel", "val_all")]
    return [scoring_role(variant["identify_on"], variant)]


#: A head that was not fitted holds this key (and nothing else), with why: a labelled baseline on data without
#: validation group labels. Its candidate table has a column of that name, and its evaluation entry, per split,
#: ``{NOT_FITTED: why}`` instead of numbers.
NOT_FITTED = "not_fitted"


def not_fitted_reason(entry) -> str | None:
    """Why a head, a candidate table or one split's metrics was not fitted (``"no validation group labels"``);
    None when it was fitted."""
    if entry is None or NOT_FITTED not in entry:
        return None
    value = entry[NOT_FITTED]
    return str(value.iloc[0] if hasattr(value, "iloc") else value)
