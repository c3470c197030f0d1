"""Classifiers the project did not train: load one, split it at its last linear layer, keep its preprocessing.

NeuronTune needs ``f = h ∘ e``: a frozen embedding function ``e`` and a linear head ``h``. A user's
classifier is cut at its last linear layer — the layer at ``head`` (an attribute path such as
``classifier.3``) or, unset, the first of :data:`HEAD_NAMES` the model has (torchvision's ``fc`` /
``classifier``, timm's ``get_classifier()``, transformers' ``classifier`` / ``score``; a container there
means its last ``nn.Linear``). Everything before it is ``e``, the layer is the ERM head. The cut is
checked on a probe batch: ``head(e(x))`` must equal the model's own output, or the layer was not the last.

Where a classifier comes from (``erm_training.source``, parsed by :func:`parse_source`):

- ``torchvision:NAME`` / ``timm:NAME`` and a local ``state_dict`` file;
- ``hf:DIR``: a transformers sequence-classification directory (``save_pretrained``), with its tokenizer;
- an MLflow PyTorch model directory (what ``models:/…`` and ``runs:/…`` resolve to in
  :mod:`neurontune.tracking.source_model`): the ``pt2`` exported program (a ``torch.fx`` GraphModule whose
  submodules keep their names) or the ``pickle`` serialization;
- ``precomputed``: the data are already embeddings and the head comes with them (``e`` = identity).

:class:`ImportedClassifier` has the interface of :mod:`neurontune.models.backbones` (``preprocess``,
``embed``, ``head``, ``config``), so embedding extraction and serving treat it like a built-in backbone.
Its checkpoint (:func:`imported_checkpoint`) is self-contained: the configuration (preprocessing
included), every weight, and the files needed to rebuild the network (the exported program, the pickled
module, the transformers configuration and tokenizer). No MLflow, Kedro or file paths of the project here.
"""

from __future__ import annotations

import copy
import io
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neurontune.models.image import IMAGENET_MEAN, IMAGENET_STD, image_tensor, load_image_file
from neurontune.models.weights import checkpoint_digest
from neurontune.models.text import token_tensor

IMPORTED = "imported"
#: ``erm_training.source`` kinds; ``train`` is the project's own ERM training.
SOURCE_KINDS = ("train", "mlflow", "torchvision", "timm", "huggingface", "precomputed")
#: Where the head is looked for, in order, when no ``head`` path is configured.
HEAD_NAMES = ("fc", "classifier", "head", "score")
INPUT_KINDS = ("image", "text", "features")
#: Preprocessing keys and their defaults (ImageNet normalisation, plain resize).
DEFAULT_PREPROCESSING = {"image_size": 224, "crop_fraction": 1.0, "mean": list(IMAGENET_MEAN),
                         "std": list(IMAGENET_STD), "max_length": 128}
_WEIGHT_FILES = (".safetensors", ".bin", ".pth", ".pt", ".h5", ".msgpack")


class SourceModelError(ValueError):
    """A source model cannot be imported: the message names the source, what was wrong and what to do."""


def parse_source(source: str) -> tuple[str, str]:
    """``(kind, reference)`` of ``erm_training.source``; kind is one of :data:`SOURCE_KINDS`.

    ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/RUN_ID/PATH`` → ``mlflow``;
    ``torchvision:NAME``, ``timm:NAME``, ``hf:DIR`` → that library; ``train``, ``precomputed`` → themselves.
    """
    if not isinstance(source, str) or not source.strip():
        raise SourceModelError(f"erm_training.source must be a non-empty string; got {source!r}.")
    source = source.strip()
    if source in ("train", "precomputed"):
        return source, ""
    if source.startswith(("models:/", "runs:/")):
        return "mlflow", source
    for prefix, kind in (("torchvision:", "torchvision"), ("timm:", "timm"), ("hf:", "huggingface")):
        if source.startswith(prefix) and source[len(prefix):].strip():
            return kind, source[len(prefix):].strip()
    raise SourceModelError(
        f"erm_training.source {source!r} is not understood; expected 'train', 'precomputed', an MLflow model URI "
        "(models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/PATH), 'torchvision:NAME' or 'timm:NAME' (with "
        "erm_training.imported.weights = a state_dict file) or 'hf:DIR' (a transformers save_pretrained directory)."
    )


# ----------------------------------------------------------------------------- loading a whole classifier


def load_torchvision(name: str, weights: str | Path | None, n_classes: int) -> nn.Module:
    """torchvision architecture ``name`` with ``n_classes`` outputs and the state_dict at ``weights``."""
    import torchvision

    if name not in torchvision.models.list_models():
        raise SourceModelError(f"torchvision has no architecture {name!r}; e.g. {torchvision.models.list_models()[:6]}.")
    return _with_state(torchvision.models.get_model(name, weights=None, num_classes=n_classes), weights, f"torchvision:{name}")


def load_timm(name: str, weights: str | Path | None, n_classes: int) -> nn.Module:
    """timm architecture ``name`` with ``n_classes`` outputs and the state_dict at ``weights``."""
    import timm

    try:
        model = timm.create_model(name, pretrained=False, num_classes=n_classes)
    except RuntimeError as error:  # timm's "Unknown model"
        raise SourceModelError(f"timm cannot build {name!r}: {error}") from error
    return _with_state(model, weights, f"timm:{name}")


def _with_state(model: nn.Module, weights, source: str) -> nn.Module:
    if weights in (None, ""):
        raise SourceModelError(f"{source} needs its trained weights: set erm_training.imported.weights to the state_dict "
                               "file (torch.save(model.state_dict(), PATH)).")
    path = Path(str(weights)).expanduser()
    if not path.is_file():
        raise SourceModelError(f"{source}: the state_dict file {path} does not exist (erm_training.imported.weights).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 — any unreadable file: name it
        raise SourceModelError(f"{source}: cannot read the state_dict file {path}: {type(error).__name__}: {error}") from error
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise SourceModelError(f"{source}: the weights in {path} do not fit the architecture (is the number of "
                               f"classes right?): {str(error)[:400]}") from error
    return model.eval()


def load_mlflow_pytorch_dir(path: str | Path) -> tuple[nn.Module, str, dict[str, bytes]]:
    """An MLflow PyTorch model directory (``MLmodel`` + ``data/``) → ``(module, serialization, files)``.

    ``pt2`` gives the ``torch.fx`` GraphModule of the exported program (as ``mlflow.pytorch.load_model`` does),
    ``pickle`` the pickled ``nn.Module`` (its classes must be importable here). ``files`` are the bytes needed
    to rebuild it.
    """
    import yaml

    path = Path(path)
    mlmodel = path / "MLmodel"
    if not mlmodel.is_file():
        raise SourceModelError(f"{path} is not an MLflow model directory (no MLmodel file).")
    flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors") or {}
    if "pytorch" not in flavors:
        raise SourceModelError(f"the MLflow model at {path} was not logged with the PyTorch flavour (its flavours: "
                               f"{sorted(flavors)}); log it with mlflow.pytorch.log_model.")
    data = path / str(flavors["pytorch"].get("model_data") or "data")
    if (data / "model.pt2").is_file():
        files = {"model.pt2": (data / "model.pt2").read_bytes()}
    elif (data / "model.pth").is_file():
        files = {"model.pth": (data / "model.pth").read_bytes()}
    else:
        raise SourceModelError(f"the MLflow model at {path} holds neither data/model.pt2 nor data/model.pth.")
    module, serialization = module_from_files(files)
    return module, serialization, files


def module_from_files(files: dict[str, bytes]) -> tuple[nn.Module, str]:
    """Rebuild the module of an MLflow PyTorch model from its ``model.pt2`` or ``model.pth`` bytes."""
    if "model.pt2" in files:
        program = torch.export.load(io.BytesIO(files["model.pt2"]))
        return program.module(), "pt2"
    if "model.pth" not in files:
        raise SourceModelError(f"an MLflow PyTorch model needs model.pt2 or model.pth; got {sorted(files)}.")
    # the pickle serialization: the user's own module, as mlflow.pytorch.load_model reads it
    module = torch.load(io.BytesIO(files["model.pth"]), map_location="cpu", weights_only=False)
    return module.eval(), "pickle"


def load_huggingface_dir(path: str | Path) -> tuple[nn.Module, object, dict[str, bytes], list[str] | None]:
    """A transformers sequence-classification directory → ``(model, tokenizer, files, class_names)``.

    ``files``: everything but the weights (configuration, tokenizer), enough with the state_dict to rebuild it;
    ``class_names``: ``id2label`` when it names the classes (None for transformers' default ``LABEL_k``).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(str(path)).expanduser()
    if not (path / "config.json").is_file():
        raise SourceModelError(f"hf:{path} is not a transformers model directory (no config.json); save the model "
                               "and its tokenizer with save_pretrained(DIR).")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as error:
        raise SourceModelError(f"hf:{path}: cannot load a sequence-classification model and its tokenizer: {error}") from error
    files = {item.name: item.read_bytes() for item in sorted(path.iterdir())
             if item.is_file() and item.suffix not in _WEIGHT_FILES}
    return model.eval(), tokenizer, files, _named_labels(model.config)


def _named_labels(config) -> list[str] | None:
    labels = [str(config.id2label[k]) for k in sorted(config.id2label)]
    return None if labels == [f"LABEL_{k}" for k in range(len(labels))] else labels


# ----------------------------------------------------------------------------- the split


def find_head(model: nn.Module, head: str | None = None) -> str:
    """Attribute path of ``model``'s last linear layer: ``head`` when given, else the first of :data:`HEAD_NAMES`
    it has (timm's ``get_classifier()`` first); a container there resolves to its last ``nn.Linear``."""
    names = dict(model.named_modules())
    if head:
        if head not in names:
            raise SourceModelError(f"erm_training.imported.head {head!r} is not a submodule of the model; its top-level "
                                   f"submodules are {[name for name, _ in model.named_children()]}.")
        path = head
    else:
        path = _timm_classifier(model, names) or next((name for name in HEAD_NAMES if name in names), None)
        if path is None:
            raise SourceModelError(f"no head found: the model has none of {list(HEAD_NAMES)}; set erm_training.imported.head "
                                   f"to the attribute path of its last linear layer (top-level submodules: "
                                   f"{[name for name, _ in model.named_children()]}).")
    if _is_linear(names[path]):
        return path
    inner = [f"{path}.{name}" for name, module in names[path].named_modules() if name and _is_linear(module)]
    if not inner:
        raise SourceModelError(f"{path!r} ({type(names[path]).__name__}) holds no linear layer; set erm_training.imported.head "
                               "to the attribute path of the model's last linear layer.")
    return inner[-1]


def _timm_classifier(model: nn.Module, names: dict) -> str | None:
    getter = getattr(model, "get_classifier", None)
    if not callable(getter) or isinstance(model, torch.fx.GraphModule):
        return None
    classifier = getter()
    return next((name for name, module in names.items() if module is classifier and name), None)


def _is_linear(module: nn.Module) -> bool:
    """An ``nn.Linear``, or what an exported program keeps of one (a plain module with a 2-d weight and a bias)."""
    weight = getattr(module, "weight", None)
    return isinstance(module, nn.Linear) or (
        type(module) is nn.Module and isinstance(weight, torch.Tensor) and weight.ndim == 2)


def split_at_head(model: nn.Module, head_path: str) -> tuple[nn.Module, nn.Linear]:
    """``(backbone, head)``: a copy of ``model`` that stops before the layer at ``head_path``, and that layer as
    an ``nn.Linear``. ``model`` is left unchanged."""
    layer = model.get_submodule(head_path)
    weight = layer.weight.detach()
    bias = getattr(layer, "bias", None)
    head = nn.Linear(weight.shape[1], weight.shape[0], bias=True)
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias.detach() if isinstance(bias, torch.Tensor) else torch.zeros(weight.shape[0]))
    backbone = copy.deepcopy(model)
    if isinstance(backbone, torch.fx.GraphModule) and not _called_as_module(backbone, head_path):
        _cut_graph(backbone, head_path)
    else:
        backbone.set_submodule(head_path, nn.Identity())
    return backbone.train(False), head.train(False)


def _called_as_module(graph_module: torch.fx.GraphModule, path: str) -> bool:
    return any(node.op == "call_module" and node.target == path for node in graph_module.graph.nodes)


_LINEAR_OPS = ("aten.linear.default", "aten.addmm.default", "aten.matmul.default", "aten.mm.default")


def _cut_graph(graph_module: torch.fx.GraphModule, head_path: str) -> None:
    """In an exported graph (flat aten ops), make the head's input the graph's output in place of its result."""
    graph = graph_module.graph
    weight = next((node for node in graph.nodes if node.op == "get_attr" and node.target == f"{head_path}.weight"), None)
    if weight is None:
        raise SourceModelError(f"the exported graph never reads {head_path}.weight; set erm_training.imported.head to the "
                               "layer its output is computed by.")
    users = list(weight.users)
    while len(users) == 1 and str(users[0].target) in ("aten.t.default", "aten.permute.default", "aten.transpose.int"):
        users = list(users[0].users)  # addmm(bias, x, t(weight)) reads the transposed weight
    linear = next((user for user in users if str(user.target) in _LINEAR_OPS), None)
    if linear is None:
        raise SourceModelError(f"{head_path}.weight is not used by a linear operation in the exported graph "
                               f"(used by {[str(user.target) for user in users]}); it cannot be the head.")
    features = linear.args[1] if str(linear.target) == "aten.addmm.default" else linear.args[0]
    output, users = linear, list(linear.users)
    if str(linear.target) in ("aten.matmul.default", "aten.mm.default") and len(users) == 1 and str(users[0].target) in (
            "aten.add.Tensor", "aten.add_.Tensor"):
        output = users[0]  # the bias added after a bare matrix product belongs to the head too
    output.replace_all_uses_with(features)
    graph.eliminate_dead_code()
    graph_module.delete_all_unused_submodules()
    graph_module.recompile()


# ----------------------------------------------------------------------------- the imported classifier


class ImportedClassifier(nn.Module):
    """``backbone`` (the user's model up to its last linear layer) + ``head`` (that layer), with the model's
    preprocessing. ``config["input"]``: ``image`` (uint8 (B, 3, H, W) or image paths), ``text`` (strings) or
    ``features`` (float (B, M), the precomputed embeddings)."""

    def __init__(self, backbone: nn.Module, head: nn.Linear, config: dict, tokenizer=None,
                 files: dict[str, bytes] | None = None):
        super().__init__()
        if config.get("input") not in INPUT_KINDS:
            raise SourceModelError(f"config['input'] must be one of {list(INPUT_KINDS)}; got {config.get('input')!r}.")
        self.config = config
        self.backbone = backbone
        self.head = head
        self.tokenizer = tokenizer
        self.files = dict(files or {})  # what rebuilds the network: the pt2 program, the pickle, the tokenizer
        self._token_types = tokenizer is not None and "token_type_ids" in getattr(tokenizer, "model_input_names", ())

    def preprocess(self, raw: np.ndarray) -> torch.Tensor:
        kind, settings, name = self.config["input"], self.config["preprocessing"], self.config["name"]
        if kind == "image":
            return image_tensor(raw, settings["image_size"], settings["crop_fraction"], settings["mean"], settings["std"], name)
        if kind == "text":
            return token_tensor(self.tokenizer, raw, settings["max_length"], name)
        width = self.head.in_features
        if raw.ndim != 2 or raw.shape[1] != width or raw.dtype.kind != "f":
            raise ValueError(f"{name} takes float features of shape (B, {width}); got {raw.dtype} {raw.shape}.")
        return torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.config["input"] != "text":
            return _tensor(self.backbone(x))
        input_ids, attention_mask, token_type_ids = x.unbind(dim=1)
        extra = {"token_type_ids": token_type_ids} if self._token_types else {}
        return _tensor(self.backbone(input_ids=input_ids, attention_mask=attention_mask, **extra))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def _tensor(output) -> torch.Tensor:
    """A model's output as one tensor (a transformers output's ``logits``, a 1-tuple's item)."""
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (tuple, list)) and len(output) == 1:
        return output[0]
    return output


def build_imported(model: nn.Module, *, loader: str, name: str, n_classes: int, input_kind: str,
                   preprocessing: dict | None = None, head: str | None = None, tokenizer=None,
                   files: dict[str, bytes] | None = None, source: dict | None = None,
                   extra: dict | None = None) -> ImportedClassifier:
    """Split ``model`` at its head, check the split on a probe batch and wrap it as an :class:`ImportedClassifier`.

    Parameters
    ----------
    model : nn.Module
        The whole classifier, outputs (B, n_classes) (a transformers model: ``.logits``).
    loader : str
        How it was loaded: ``torchvision``, ``timm``, ``huggingface`` or ``mlflow`` (rebuilt the same way).
    n_classes : int
        Classes of the data; the head must have as many outputs.
    input_kind : str
        ``image`` or ``text``.
    preprocessing : dict
        :data:`DEFAULT_PREPROCESSING`'s keys (missing ones take the default).
    source : dict
        What lineage records: uri, version, run_id … (``weights_digest`` is added here).
    """
    head_path = find_head(model, head)
    backbone, linear = split_at_head(model, head_path)
    if linear.out_features != n_classes:
        raise SourceModelError(f"{name}: the head {head_path!r} has {linear.out_features} outputs but the data declare "
                               f"{n_classes} classes; the model's outputs must be the data's classes, in order.")
    settings = {**DEFAULT_PREPROCESSING, **{k: v for k, v in (preprocessing or {}).items() if v is not None}}
    config = {"architecture": IMPORTED, "loader": loader, "name": name, "head": head_path, "n_classes": int(n_classes),
              "embedding_dim": int(linear.in_features), "input": input_kind, "preprocessing": settings,
              "source": {**(source or {}), "weights_digest": state_digest(model)}, **(extra or {})}
    imported = ImportedClassifier(backbone, linear, config, tokenizer, files)
    _check_split(model, imported)
    return imported.eval()


def precomputed_classifier(weight: np.ndarray, bias: np.ndarray, *, name: str, source: dict | None = None) -> ImportedClassifier:
    """The head of precomputed embeddings as a classifier whose backbone is the identity (it takes features)."""
    weight, bias = np.asarray(weight, dtype=np.float32), np.asarray(bias, dtype=np.float32)
    if weight.ndim != 2 or bias.shape != (weight.shape[0],) or not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        raise SourceModelError(f"{name}: the head must be a finite weight (C, M) and bias (C,); got {weight.shape} and {bias.shape}.")
    head = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.from_numpy(bias))
    config = {"architecture": IMPORTED, "loader": "precomputed", "name": name, "head": "head",
              "n_classes": int(weight.shape[0]), "embedding_dim": int(weight.shape[1]), "input": "features",
              "preprocessing": {}, "source": {**(source or {}), "weights_digest": state_digest(head)}}
    return ImportedClassifier(nn.Identity(), head.eval(), config)


@torch.inference_mode()
def _check_split(model: nn.Module, imported: ImportedClassifier) -> None:
    """``head(backbone(x))`` must reproduce the model's own logits on a probe batch."""
    probe = _probe_batch(imported)
    expected = _tensor(model(**_text_arguments(imported, probe)) if imported.config["input"] == "text" else model(probe))
    got = imported(probe)
    if expected.shape != got.shape or not torch.allclose(expected, got, rtol=1e-4, atol=1e-4):
        gap = (expected - got).abs().max().item() if expected.shape == got.shape else f"shapes {tuple(expected.shape)} vs {tuple(got.shape)}"
        raise SourceModelError(f"{imported.config['name']}: the layer {imported.config['head']!r} is not the model's last "
                               f"step (head(backbone(x)) differs from the model's output by {gap}); set "
                               "erm_training.imported.head to the layer that computes the logits.")


def _probe_batch(imported: ImportedClassifier) -> torch.Tensor:
    if imported.config["input"] == "text":
        return imported.preprocess(np.array(["a probe sentence", "another, longer probe sentence for the check"]))
    size = imported.config["preprocessing"]["image_size"]
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))


def _text_arguments(imported: ImportedClassifier, x: torch.Tensor) -> dict:
    input_ids, attention_mask, token_type_ids = x.unbind(dim=1)
    extra = {"token_type_ids": token_type_ids} if imported._token_types else {}
    return {"input_ids": input_ids, "attention_mask": attention_mask, **extra}


def state_digest(module: nn.Module) -> str:
    """SHA-256 of a module's weights (names, dtypes, shapes, bytes): the source model's identity for lineage."""
    return checkpoint_digest({"config": {}, "state_dict": module.state_dict()})


def check_class_names(declared: list[str], model_names: list[str] | None, source: str) -> None:
    """Refuse class names the model orders differently (or names otherwise) than the data declare."""
    if model_names is None:
        return
    if list(model_names) != list(declared):
        order = " (the same names in another order)" if sorted(model_names) == sorted(declared) else ""
        raise SourceModelError(f"{source} names its outputs {list(model_names)} but data_versioning.classes is "
                               f"{list(declared)}{order}; list the classes in the order of the model's outputs.")


def source_name(config: dict) -> str:
    """The source model's name (the registered name of an MLflow model): ``{source}`` in the registered name."""
    return str(config["source"].get("name") or config["name"])


def source_summary(config: dict) -> dict[str, str]:
    """What lineage records of the source: ``source_model.<key>`` → value (URI, name, version, weights digest …)."""
    fields = {**config["source"], "head": config["head"], "loader": config["loader"]}
    return {f"source_model.{key}": str(value) for key, value in sorted(fields.items()) if value is not None}


def example_inputs(checkpoint: dict, raw: np.ndarray) -> np.ndarray:
    """A serving example from raw inputs: image paths are read (the served model takes uint8 images, not paths
    on this machine's disk); anything else is returned as it is."""
    config = checkpoint.get("config", {})
    if config.get("architecture") != IMPORTED or config.get("input") != "image" or raw.dtype.kind not in "US":
        return raw
    settings = config["preprocessing"]
    return np.stack([load_image_file(path, settings["image_size"], settings["crop_fraction"]) for path in raw])


# ----------------------------------------------------------------------------- checkpoints


def imported_checkpoint(model: ImportedClassifier) -> dict:
    """``{"config", "state_dict", "files"}``: everything :func:`imported_from_checkpoint` needs, no path."""
    return {"config": model.config, "state_dict": model.state_dict(), "files": dict(model.files)}


def imported_from_checkpoint(checkpoint: dict) -> ImportedClassifier:
    """Rebuild an :class:`ImportedClassifier` from :func:`imported_checkpoint`'s dict (in eval mode)."""
    config, files = checkpoint["config"], checkpoint.get("files") or {}
    loader, n_classes = config["loader"], config["n_classes"]
    tokenizer = None
    if loader == "precomputed":
        backbone, head = nn.Identity(), nn.Linear(config["embedding_dim"], n_classes)
    else:
        if loader == "torchvision":
            import torchvision

            model = torchvision.models.get_model(config["name"].split(":", 1)[1], weights=None, num_classes=n_classes)
        elif loader == "timm":
            import timm

            model = timm.create_model(config["name"].split(":", 1)[1], pretrained=False, num_classes=n_classes)
        elif loader == "mlflow":
            model, _ = module_from_files(files)
        elif loader == "huggingface":
            model, tokenizer = _huggingface_from_files(files)
        else:
            raise SourceModelError(f"unknown imported model loader {loader!r}; expected one of {list(SOURCE_KINDS[1:])}.")
        backbone, head = split_at_head(model, config["head"])
    imported = ImportedClassifier(backbone, head, config, tokenizer, files)
    imported.load_state_dict(checkpoint["state_dict"])
    return imported.eval()


def _huggingface_from_files(files: dict[str, bytes]):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    with tempfile.TemporaryDirectory() as folder:
        for name, content in files.items():
            (Path(folder) / name).write_bytes(content)
        config = AutoConfig.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    return AutoModelForSequenceClassification.from_config(config, dtype=torch.float32), tokenizer
