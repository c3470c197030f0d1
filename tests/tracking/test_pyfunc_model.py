"""The pyfunc wrapper on a text backbone (the image path is served end to end in test_serving)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.exceptions import MlflowException

from neurontune.models import backbones
from neurontune.tracking.pyfunc_model import DebiasedPyfuncModel, model_signature
from tests.models.test_predictor import _CharacterBag


@pytest.fixture
def text_model(tmp_path, monkeypatch):
    monkeypatch.setitem(backbones.ARCHITECTURES, "character_bag", _CharacterBag)
    torch.manual_seed(0)
    backbone = _CharacterBag()
    torch.save({"config": backbone.config, "state_dict": backbone.state_dict()}, tmp_path / "erm_model.pt")
    # neuron 2 is masked but keeps a large weight: served predictions must not see it
    np.savez(tmp_path / "head.npz", weight=np.array([[1.0, 0, 0, 1.0], [0, 1.0, 10.0, 0]]), bias=np.zeros(2),
             keep=np.array([1.0, 1.0, 0.0, 1.0]), mask=np.array([False, False, True, False]))
    (tmp_path / "input_spec.json").write_text(json.dumps({"kind": "text"}))
    context = SimpleNamespace(artifacts={"checkpoint": str(tmp_path / "erm_model.pt"), "head": str(tmp_path / "head.npz"),
                                         "input_spec": str(tmp_path / "input_spec.json")}, model_config={"device": "cpu"})
    model = DebiasedPyfuncModel()
    model.load_context(context)
    return model, context


def test_text_column_in_predictions_out(text_model):
    model, context = text_model
    output = model.predict(context, pd.DataFrame({"text": ["not bad", "never", "great fun"]}))
    assert list(output.columns) == ["prediction", "probability_0", "probability_1"]
    assert len(output) == 3
    np.testing.assert_allclose(output[["probability_0", "probability_1"]].sum(axis=1), 1.0)
    same = model.predict(context, {"text": np.array(["not bad", "never", "great fun"])})
    pd.testing.assert_frame_equal(output, same)


def test_a_masked_text_neuron_never_reaches_the_prediction(text_model):
    model, context = text_model
    texts = ["not bad", "never", "great fun", "terrible", "awful movie"]
    backbone = _CharacterBag()
    backbone.load_state_dict(torch.load(context.artifacts["checkpoint"])["state_dict"])
    with torch.no_grad():
        embeddings = backbone.embed(backbone.preprocess(texts)).numpy().astype(np.float64)
    with np.load(context.artifacts["head"]) as head:
        masked = embeddings @ (head["weight"] * head["keep"]).T
        unmasked = embeddings @ head["weight"].T
    assert (masked.argmax(axis=1) != unmasked.argmax(axis=1)).any(), "the mask must matter here, or this proves nothing"
    output = model.predict(context, pd.DataFrame({"text": texts}))
    assert output["prediction"].tolist() == masked.argmax(axis=1).tolist()
    expected = np.exp(masked) / np.exp(masked).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(output[["probability_0", "probability_1"]], expected, rtol=1e-5)


@pytest.mark.parametrize(
    ("request_body", "match"),
    [(pd.DataFrame({"text": []}), "empty batch"), (pd.DataFrame({"sentence": ["a"]}), "'text' column"),
     (np.array([1, 2]), "strings")],
    ids=["empty", "wrong_column", "numbers"],
)
def test_bad_text_requests(text_model, request_body, match):
    model, context = text_model
    with pytest.raises((MlflowException, ValueError), match=match):
        model.predict(context, request_body)


def test_signatures():
    text = model_signature({"kind": "text"}, 3)
    assert text.inputs.to_dict() == [{"type": "string", "name": "text", "required": True}]
    assert text.outputs.input_names() == ["prediction", "probability_0", "probability_1", "probability_2"]
    images = model_signature({"kind": "tensor", "dtype": "uint8", "shape": [3, 28, 28]}, 2)
    assert images.inputs.to_dict() == [{"type": "tensor", "tensor-spec": {"dtype": "uint8", "shape": (-1, 3, 28, 28)}}]
