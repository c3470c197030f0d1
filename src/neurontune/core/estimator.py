"""NeuronTune as a scikit-learn-style estimator over cached embeddings."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from neurontune.core._validation import check_embeddings, check_labels, check_n_classes, check_same_width
from neurontune.core.groups import balanced_sample_weights
from neurontune.core.head import RETRAIN_DEFAULTS, RETRAIN_SETTINGS, LinearHead, head_predict, retrain_head
from neurontune.core.scoring import NeuronScores, score_neurons, select_biased_neurons, spuriousness_fit



class NeuronTune(BaseEstimator):
    """Identify biased neurons on ``D_ide``, suppress them, retrain the head on ``D_tune``.

    Every parameter is an explicit keyword, so ``get_params``, ``set_params`` and
    ``sklearn.base.clone`` work as for any scikit-learn estimator.

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
    top_k : int or None
        Suppress at most the ``k`` highest-scoring selected neurons (None = no cap).
    statistic : {"median", "scaled", "lcb"}
        How δ is computed when the estimator scores itself (see :func:`score_error_sets`).
    balance : {"class", "pseudo_group"}
        ``class`` (the paper): every class weighs the same in retraining. ``pseudo_group``: every
        (class, error set) cell of ``tune_groups`` weighs the same (label-free group balancing).
    weight_decay, solver, max_iter, epochs, learning_rate, momentum, batch_size, seed, device
        Retraining settings, see :func:`retrain_head`.

    Attributes
    ----------
    scores_ : NeuronScores of the last round
    mask_ : bool array (M,) or (C, M)
    head_ : LinearHead
    sfit_ : float, SFit of the last round's scores
    """

    def __init__(self, n_classes: int = 2, threshold: float = 0.0, rule: str = "all", suppression_scale: float = 0.0,
                 rounds: int = 1, use_mask: bool = True, top_k: int | None = None, statistic: str = "median",
                 balance: str = "class", weight_decay: float = RETRAIN_DEFAULTS["weight_decay"],
                 solver: str = RETRAIN_DEFAULTS["solver"], max_iter: int = RETRAIN_DEFAULTS["max_iter"],
                 epochs: int = RETRAIN_DEFAULTS["epochs"], learning_rate: float = RETRAIN_DEFAULTS["learning_rate"],
                 momentum: float = RETRAIN_DEFAULTS["momentum"], batch_size: int = RETRAIN_DEFAULTS["batch_size"],
                 seed: int = RETRAIN_DEFAULTS["seed"], device=RETRAIN_DEFAULTS["device"]):
        self.n_classes = n_classes
        self.threshold = threshold
        self.rule = rule
        self.suppression_scale = suppression_scale
        self.rounds = rounds
        self.use_mask = use_mask
        self.top_k = top_k
        self.statistic = statistic
        self.balance = balance
        self.weight_decay = weight_decay
        self.solver = solver
        self.max_iter = max_iter
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.batch_size = batch_size
        self.seed = seed
        self.device = device

    def fit(self, ide_embeddings, ide_y, ide_erm_pred, tune_embeddings, tune_y, init: LinearHead | None = None,
            scores: NeuronScores | None = None, tune_groups=None) -> "NeuronTune":
        """Fit from identification data (embeddings, labels, ERM predictions) and tuning data (embeddings, labels).

        ``scores``: the round-1 scores of exactly this identification data, when already
        computed (a grid search scores once and varies λ and the rule over the same scores; they
        may come from another error source than ``ide_erm_pred``, see :mod:`neurontune.core.errors`).
        ``tune_groups``: label-free pseudo-group ids of the tuning samples (``balance="pseudo_group"``).
        """
        n_classes = check_n_classes(self.n_classes)
        ide_embeddings = check_embeddings(ide_embeddings, "ide_embeddings")
        tune_embeddings = check_embeddings(tune_embeddings, "tune_embeddings")
        check_same_width({"ide_embeddings": ide_embeddings.shape[1], "tune_embeddings": tune_embeddings.shape[1]})
        ide_y = check_labels(ide_y, n_classes, "ide_y", n_samples=len(ide_embeddings))
        ide_pred = check_labels(ide_erm_pred, n_classes, "ide_erm_pred", n_samples=len(ide_embeddings))
        tune_y = check_labels(tune_y, n_classes, "tune_y", n_samples=len(tune_embeddings))
        if not isinstance(self.rounds, (int, np.integer)) or self.rounds < 1:
            raise ValueError(f"rounds must be a positive integer; got {self.rounds!r}.")
        if scores is not None and scores.scores.shape != (n_classes, ide_embeddings.shape[1]):
            raise ValueError(f"scores must have shape ({n_classes}, {ide_embeddings.shape[1]}) to match the "
                             f"identification embeddings; got {scores.scores.shape}.")
        retrain = {**self._retrain_options(), **self._balancing(tune_y, tune_groups)}
        self.mask_ = None
        for round_ in range(self.rounds if self.use_mask else 1):
            if round_ > 0 or scores is None:
                scores = score_neurons(ide_embeddings, ide_y, ide_pred, n_classes, statistic=self.statistic, seed=self.seed)
            self.scores_ = scores
            if self.use_mask:
                selected = select_biased_neurons(scores.scores, self.threshold, self.rule, top_k=self.top_k)
                self.mask_ = selected if self.mask_ is None else self.mask_ | selected
            self.head_ = retrain_head(tune_embeddings, tune_y, n_classes, self.mask_, init=init,
                                      suppression_scale=self.suppression_scale, **retrain)
            ide_pred = head_predict(ide_embeddings, self.head_)
        if self.mask_ is None:
            self.mask_ = np.zeros(ide_embeddings.shape[1], dtype=bool)
        self.sfit_ = spuriousness_fit(self.scores_.scores)
        return self

    def fit_key(self, scores: NeuronScores | None) -> tuple | None:
        """A key equal for two estimators that would fit the same head from the same data and ``scores``;
        None when the result depends on more than the round-1 mask (``rounds > 1``) or no scores are given."""
        if self.use_mask and (scores is None or self.rounds != 1):
            return None
        mask = (select_biased_neurons(scores.scores, self.threshold, self.rule, top_k=self.top_k, warn=False)
                if self.use_mask else None)
        settings = tuple((name, str(value)) for name, value in self._retrain_options().items()) + (("balance", self.balance),)
        return (None if mask is None else (mask.shape, mask.tobytes()), float(self.suppression_scale), settings)

    def predict(self, embeddings) -> np.ndarray:
        """Class predictions (N,) of the retrained head."""
        if not hasattr(self, "head_"):
            raise RuntimeError("NeuronTune is not fitted yet; call fit(...) first.")
        return head_predict(embeddings, self.head_)

    def _balancing(self, tune_y, tune_groups) -> dict:
        if self.balance == "class":
            return {}
        if self.balance != "pseudo_group":
            raise ValueError(f"balance must be 'class' or 'pseudo_group'; got {self.balance!r}.")
        if tune_groups is None:
            raise ValueError("balance='pseudo_group' needs tune_groups, the pseudo-group id of every tuning sample.")
        groups = np.asarray(tune_groups)
        groups = check_labels(groups, max(int(groups.max()) + 1, 2), "tune_groups", n_samples=len(tune_y))
        return {"sample_weight": balanced_sample_weights(groups, int(groups.max()) + 1), "balance_classes": False}

    def _retrain_options(self) -> dict:
        return {name: getattr(self, name) for name in RETRAIN_SETTINGS}


__all__ = ["NeuronTune", "NeuronScores"]
