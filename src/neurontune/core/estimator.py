"""NeuronTune as a small scikit-learn-style estimator over cached embeddings."""

from __future__ import annotations

import numpy as np

from neurontune.core._validation import check_embeddings, check_labels, check_n_classes, check_same_width
from neurontune.core.head import LinearHead, head_predict, retrain_head
from neurontune.core.scoring import NeuronScores, score_neurons, select_biased_neurons, spuriousness_fit


class NeuronTune:
    """Identify biased neurons on ``D_ide``, suppress them, retrain the head on ``D_tune``.

    Parameters
    ----------
    n_classes : int
    threshold : float
        ``λ``; neuron ``i`` is biased for class ``y`` when ``δ_i^y > λ``.
    rule : {"all", "any", "per_class"}
        How per-class selections combine (see :func:`select_biased_neurons`).
    suppression_scale : float
        0 zeroes biased neurons (the paper); (0, 1] scales them (ablation option).
    rounds : int
        Identification/retraining rounds; round ``r > 1`` re-scores with the
        previous round's head and adds the newly selected neurons. 1 = the paper.
    use_mask : bool
        False retrains without any suppression (the ``class_balanced_retrain`` ablation).
    retrain_options
        Keyword arguments of :func:`retrain_head` (solver, epochs, learning_rate,
        momentum, weight_decay, batch_size, seed, device).

    Attributes
    ----------
    scores_ : NeuronScores of the last round
    mask_ : bool array (M,) or (C, M)
    head_ : LinearHead
    sfit_ : float
    """

    def __init__(self, n_classes: int, threshold: float = 0.0, rule: str = "all", suppression_scale: float = 0.0,
                 rounds: int = 1, use_mask: bool = True, **retrain_options):
        self.n_classes = n_classes
        self.threshold = threshold
        self.rule = rule
        self.suppression_scale = suppression_scale
        self.rounds = rounds
        self.use_mask = use_mask
        self.retrain_options = retrain_options

    def fit(self, ide_embeddings, ide_y, ide_erm_pred, tune_embeddings, tune_y, init: LinearHead | None = None) -> "NeuronTune":
        """Fit from identification data (embeddings, labels, ERM predictions) and tuning data (embeddings, labels)."""
        n_classes = check_n_classes(self.n_classes)
        ide_embeddings = check_embeddings(ide_embeddings, "ide_embeddings")
        tune_embeddings = check_embeddings(tune_embeddings, "tune_embeddings")
        check_same_width({"ide_embeddings": ide_embeddings.shape[1], "tune_embeddings": tune_embeddings.shape[1]})
        ide_y = check_labels(ide_y, n_classes, "ide_y", n_samples=len(ide_embeddings))
        ide_pred = check_labels(ide_erm_pred, n_classes, "ide_erm_pred", n_samples=len(ide_embeddings))
        tune_y = check_labels(tune_y, n_classes, "tune_y", n_samples=len(tune_embeddings))
        if not isinstance(self.rounds, (int, np.integer)) or self.rounds < 1:
            raise ValueError(f"rounds must be a positive integer; got {self.rounds!r}.")
        self.mask_ = None
        for _ in range(self.rounds if self.use_mask else 1):
            self.scores_ = score_neurons(ide_embeddings, ide_y, ide_pred, n_classes)
            if self.use_mask:
                selected = select_biased_neurons(self.scores_.scores, self.threshold, self.rule)
                self.mask_ = selected if self.mask_ is None else self.mask_ | selected
            self.head_ = retrain_head(tune_embeddings, tune_y, n_classes, self.mask_, suppression_scale=self.suppression_scale,
                                      init=init, **self.retrain_options)
            ide_pred = head_predict(ide_embeddings, self.head_)
        if self.mask_ is None:
            self.mask_ = np.zeros(ide_embeddings.shape[1], dtype=bool)
        self.sfit_ = spuriousness_fit(self.scores_.scores)
        return self

    def predict(self, embeddings) -> np.ndarray:
        """Class predictions (N,) of the retrained head."""
        if not hasattr(self, "head_"):
            raise RuntimeError("NeuronTune is not fitted yet; call fit(...) first.")
        return head_predict(embeddings, self.head_)


__all__ = ["NeuronTune", "NeuronScores"]
