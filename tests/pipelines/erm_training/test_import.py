"""erm_training with ``source`` set: the user's classifier is imported, never retrained; without an early checkpoint
the cache has no early logits and the early error sets fall back to cross-fitted ones, saying so."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from neurontune.models.backbones import model_from_checkpoint
from neurontune.pipelines.embedding_caching.nodes import cache_embeddings
from neurontune.pipelines.erm_training.nodes import provide_erm_model
from neurontune.pipelines.neuron_identification.nodes import find_error_sets
from tests.user_artifacts import write_embeddings

ERROR_SETS = {"crossfit": {"n_folds": 3, "weight_decay": 0.001, "seed": 0}, "loss_quantile": {"fraction": 0.2}}


def test_a_precomputed_head_is_imported_cached_and_its_early_errors_are_cross_fitted(tmp_path, caplog):
    arrays = write_embeddings(tmp_path / "embeddings.npz", groups="none")
    raw = {"inputs": arrays["features"], "head_weight": arrays["head_weight"], "head_bias": arrays["head_bias"]}
    labels = pd.DataFrame({"sample_id": np.arange(len(arrays["labels"])), "split": arrays["splits"],
                           "y": (arrays["labels"] == "dog").astype(np.int64)})
    erm = {"source": "precomputed", "imported": {}, "mode": "finetune"}
    checkpoint, history, early = provide_erm_model(raw, labels, erm, {"n_classes": 2, "classes": ["cat", "dog"]})
    assert history == {} and early["absent"] and "cross-fitted" in early["reason"]
    model = model_from_checkpoint(checkpoint)
    torch.testing.assert_close(model.head.weight, torch.from_numpy(arrays["head_weight"]))
    train, val, test, head = cache_embeddings(raw, labels, checkpoint, early, {"device": "cpu", "batch_size": 64})
    assert "early_logits" not in train
    np.testing.assert_allclose(train["embeddings"], arrays["features"][labels["split"] == "train"])
    np.testing.assert_allclose(head["weight"], arrays["head_weight"])
    with caplog.at_level(logging.WARNING):
        found = find_error_sets(train, val, ERROR_SETS, "finetune")
    np.testing.assert_array_equal(found["train_early"], found["train_crossfit"])
    np.testing.assert_array_equal(found["train_auto"], found["train_crossfit"])
    assert "no early checkpoint" in caplog.text
