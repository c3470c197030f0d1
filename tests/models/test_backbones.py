import numpy as np
import pytest
import torch

from neurontune.models.backbones import build_model, model_from_checkpoint
from neurontune.models.batching import embed_and_predict
from neurontune.models.devices import resolve_device

CONFIG = {"architecture": "small_cnn", "n_classes": 2, "in_channels": 3, "embedding_dim": 8, "width": 4}


def test_small_cnn_embeds_non_negatively_and_round_trips():
    model = build_model(CONFIG)
    images = np.random.default_rng(0).integers(0, 256, (5, 3, 28, 28), dtype=np.uint8)
    embeddings, logits = embed_and_predict(model, images, batch_size=2, device=torch.device("cpu"))
    assert embeddings.shape == (5, 8) and logits.shape == (5, 2) and embeddings.min() >= 0
    rebuilt = model_from_checkpoint({"config": model.config, "state_dict": model.state_dict()})
    np.testing.assert_allclose(embed_and_predict(rebuilt, images, 5, torch.device("cpu"))[1], logits, atol=1e-6)


def test_preprocess_names_the_expected_input():
    with pytest.raises(ValueError, match=r"small_cnn expects uint8 images of shape \(B, 3, H, W\); got float64"):
        build_model(CONFIG).preprocess(np.zeros((1, 3, 28, 28)))


def test_unknown_architecture_and_incomplete_checkpoint():
    with pytest.raises(ValueError, match="unknown architecture 'vit'"):
        build_model({"architecture": "vit"})
    with pytest.raises(ValueError, match="model checkpoint is missing 'state_dict'"):
        model_from_checkpoint({"config": CONFIG})


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
