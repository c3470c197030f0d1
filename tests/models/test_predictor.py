"""The debiased predictor: raw inputs → backbone → suppressed head, with a validated input contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neurontune.core import LinearHead, head_logits
from neurontune.models import backbones
from neurontune.models.backbones import build_model
from neurontune.models.batching import embed_and_predict
from neurontune.models.predictor import DebiasedClassifier, check_raw_batch, checkpoint_digest, describe_inputs

CONFIG = {"architecture": "small_cnn", "n_classes": 2, "in_channels": 3, "embedding_dim": 8, "width": 4}


@pytest.fixture
def checkpoint():
    torch.manual_seed(0)
    model = build_model(CONFIG)
    return {"config": model.config, "state_dict": model.state_dict()}


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(5, 3, 12, 12), dtype=np.uint8)


def test_predicts_with_the_evaluation_code_path(checkpoint, images):
    rng = np.random.default_rng(1)
    keep = np.array([1.0, 0.0, 1, 1, 0, 1, 1, 1])  # two suppressed neurons
    head = {"weight": rng.normal(size=(2, 8)), "bias": rng.normal(size=2), "keep": keep, "mask": keep == 0}
    classifier = DebiasedClassifier.from_artifacts(checkpoint, head, describe_inputs(images))
    output = classifier.predict(images)
    embeddings, _ = embed_and_predict(classifier.backbone, images, 256, torch.device("cpu"))
    expected = head_logits(embeddings, LinearHead.from_arrays(head["weight"], head["bias"], keep))
    np.testing.assert_array_equal(output["prediction"], expected.argmax(axis=1))
    np.testing.assert_allclose(output["probabilities"].sum(axis=1), 1.0)
    # the suppressed neurons do not matter: changing their weights (for one class: the same shift for every
    # class would cancel in the softmax) changes nothing
    assert np.abs(embeddings[:, [1, 4]]).sum() > 0, "suppressed neurons must fire here, or this proves nothing"
    head["weight"][0, [1, 4]] += 100.0
    shifted = DebiasedClassifier.from_artifacts(checkpoint, head, describe_inputs(images)).predict(images)
    np.testing.assert_allclose(shifted["probabilities"], output["probabilities"])


def test_describe_inputs():
    assert describe_inputs(np.zeros((2, 3, 4, 4), np.uint8)) == {"kind": "tensor", "dtype": "uint8", "shape": [3, 4, 4]}
    assert describe_inputs(np.array(["a b", "c"])) == {"kind": "text"}
    assert describe_inputs(np.array(["a", "b"], dtype=object)) == {"kind": "text"}
    with pytest.raises(ValueError, match="non-empty batch"):
        describe_inputs(np.zeros((0, 3), np.uint8))


@pytest.mark.parametrize(
    ("raw", "error", "match"),
    [
        (np.zeros((0, 3, 4, 4), np.uint8), ValueError, "empty batch"),
        (np.zeros((0,), np.uint8), ValueError, "empty batch"),
        (np.zeros((2, 3, 4, 4), np.float32), TypeError, "dtype uint8"),
        (np.zeros((2, 3, 4, 5), np.uint8), ValueError, r"shape \(3, 4, 4\)"),
        (np.zeros((3, 4, 4), np.uint8), ValueError, r"shape \(3, 4, 4\)"),
    ],
    ids=["empty", "empty_flat", "float", "wrong_width", "missing_batch_axis"],
)
def test_bad_batches_are_rejected_clearly(raw, error, match):
    with pytest.raises(error, match=match):
        check_raw_batch(raw, {"kind": "tensor", "dtype": "uint8", "shape": [3, 4, 4]})


def test_text_batches():
    spec = {"kind": "text"}
    assert check_raw_batch(["good", "not good"], spec).tolist() == ["good", "not good"]
    with pytest.raises(TypeError, match="strings"):
        check_raw_batch(np.array([1, 2]), spec)
    with pytest.raises(ValueError, match="empty batch"):
        check_raw_batch([], spec)


class _CharacterBag(nn.Module):
    """A toy text backbone: character counts → ReLU embedding (stands in for MiniLM)."""

    def __init__(self, n_classes=2, embedding_dim=4):
        super().__init__()
        self.config = {"architecture": "character_bag", "n_classes": n_classes, "embedding_dim": embedding_dim}
        self.features = nn.Sequential(nn.Linear(26, embedding_dim), nn.ReLU())
        self.head = nn.Linear(embedding_dim, n_classes)

    def preprocess(self, raw):
        counts = np.zeros((len(raw), 26), np.float32)
        for row, text in enumerate(raw):
            for character in text.lower():
                if "a" <= character <= "z":
                    counts[row, ord(character) - 97] += 1
        return torch.from_numpy(counts)

    def embed(self, x):
        return self.features(x)


def test_text_backbones_work_through_the_same_predictor(monkeypatch):
    monkeypatch.setitem(backbones.ARCHITECTURES, "character_bag", _CharacterBag)
    model = build_model({"architecture": "character_bag", "n_classes": 2, "embedding_dim": 4})
    checkpoint = {"config": model.config, "state_dict": model.state_dict()}
    head = {"weight": np.ones((2, 4)), "bias": np.array([0.0, 1.0]), "keep": np.ones(4)}
    texts = np.array(["never again", "great", "not bad at all"])
    output = DebiasedClassifier.from_artifacts(checkpoint, head, describe_inputs(texts)).predict(texts)
    assert output["prediction"].tolist() == [1, 1, 1]  # equal weights: the bias decides
    assert output["probabilities"].shape == (3, 2)


def test_head_must_fit_the_backbone(checkpoint):
    head = {"weight": np.ones((2, 5)), "bias": np.zeros(2), "keep": np.ones(5)}
    with pytest.raises(ValueError, match="embeds into 8 neurons"):
        DebiasedClassifier.from_artifacts(checkpoint, head, {"kind": "tensor", "dtype": "uint8", "shape": [3, 4, 4]})


def test_checkpoint_digest_tracks_weights(checkpoint):
    digest = checkpoint_digest(checkpoint)
    assert digest == checkpoint_digest({"config": dict(checkpoint["config"]),
                                        "state_dict": {k: v.clone() for k, v in checkpoint["state_dict"].items()}})
    changed = {k: v.clone() for k, v in checkpoint["state_dict"].items()}
    changed["head.bias"][0] += 1e-3
    assert checkpoint_digest({"config": checkpoint["config"], "state_dict": changed}) != digest
