import numpy as np

from neurontune.models.backbones import model_from_checkpoint


def test_cache_matches_a_direct_forward_pass(tiny_run):
    model = model_from_checkpoint(tiny_run["erm_model"])
    test = tiny_run["embeddings_test"]
    inputs = tiny_run["raw_inputs"]["inputs"][tiny_run["raw_metadata"]["split"].to_numpy() == "test"]
    logits = model(model.preprocess(inputs)).detach().numpy()
    np.testing.assert_allclose(test["logits"], logits, atol=1e-4)
    assert test["embeddings"].min() >= 0  # ReLU bottleneck


def test_erm_head_reproduces_the_cached_logits(tiny_run):
    head, val = tiny_run["erm_head"], tiny_run["embeddings_val"]
    np.testing.assert_allclose(val["embeddings"] @ head["weight"].T + head["bias"], val["logits"], atol=1e-4)
    assert set(val) == {"embeddings", "logits", "early_logits", "y", "sample_id"}


def test_early_logits_are_the_early_checkpoints_predictions(tiny_run):
    early = model_from_checkpoint(tiny_run["erm_early_model"])
    test = tiny_run["embeddings_test"]
    inputs = tiny_run["raw_inputs"]["inputs"][tiny_run["raw_metadata"]["split"].to_numpy() == "test"]
    np.testing.assert_allclose(test["early_logits"], early(early.preprocess(inputs)).detach().numpy(), atol=1e-4)
    assert tiny_run["erm_early_model"]["epoch"] == 1
