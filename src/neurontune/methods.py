"""The method registry: every evaluated method is declared once, in configuration.

- NeuronTune variants: entries of ``neurontune_regulation.variants``
  (``conf/base/parameters_neurontune_regulation.yml``): the tuning set, whether the mask
  is used, and optionally their own grid and selection criterion.
- Baselines: entries of ``baselines.methods`` (``conf/base/parameters_baselines.yml``):
  the core function, the labels it uses, the tuning set and its options (grids).
- ``erm`` is the reference every method starts from.

The regulation and baselines pipelines, evaluation, model promotion, the labels table,
``dvc.yaml`` (through directory outputs) and the benchmark runner all derive their
method lists from :func:`load_registry`. Methods are declared in ``conf/base``; a Kedro
environment may change their settings (grids, options) but not add or remove methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

#: The annotations a method may consume beyond class labels.
LABEL_KINDS = ("none", "val_groups", "train_groups")
#: Where a NeuronTune variant's head is tuned: the training split, the identification half of
#: validation (the paper's NeuronTune†), or both halves cross-fitted and refit on all validation.
VARIANT_TUNE_SETS = ("train", "val_ide", "val_crossfit")
#: Where a baseline's head is tuned (its selection set is always the selection half of validation).
BASELINE_TUNE_SETS = ("train", "val_ide")
REFERENCE = "erm"
#: Keys of metrics.json that are report sections, not methods.
VALIDITY = "validity"
#: does each mask hit the shortcut (neurons' attribute AUROC; evaluation), and the do-no-harm report
MASK_QUALITY = "mask_quality"
HARM = "harm"
REPORT_SECTIONS = (VALIDITY, MASK_QUALITY, HARM)


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
    """

    name: str
    kind: str
    stage: str
    labels_used: str
    tune_set: str | None
    uses_mask: bool = False

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


def registry_from_parameters(parameters: dict) -> dict[str, Method]:
    """The registry, in report order (ERM, the NeuronTune variants, the baselines), from merged parameters.

    Each entry is checked against its schema (:class:`neurontune.parameters.Variant`, :class:`~neurontune.parameters.Baseline`).
    """
    from neurontune.parameters import Baseline, Variant, validate_block

    variants = _section(parameters, "neurontune_regulation", "variants")
    baselines = _section(parameters, "baselines", "methods")
    methods = {REFERENCE: Method(REFERENCE, "reference", "embedding_caching", "none", None)}
    for name, entry in variants.items():
        validate_block(Variant, entry, ("neurontune_regulation", "variants", name))
        methods[name] = Method(name, "neurontune", "neurontune_regulation", "none", entry["tune_set"],
                               uses_mask=bool(entry["use_mask"]))
    for name, entry in baselines.items():
        validate_block(Baseline, entry, ("baselines", "methods", name))
        if name in methods:
            raise ValueError(f"method {name!r} is declared twice (a variant and a baseline); names must be unique.")
        methods[name] = Method(name, "baseline", "baselines", entry["labels_used"], entry["tune_set"])
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
