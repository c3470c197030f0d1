"""The NeuronTune method as pure array functions (numpy/torch only; no Kedro, MLflow or DVC)."""

from neurontune.core.estimator import NeuronTune
from neurontune.core.groups import balanced_sample_weights, group_ids, per_group_accuracy
from neurontune.core.head import LinearHead, head_logits, head_predict, keep_from_mask, retrain_head
from neurontune.core.metrics import group_report, mean_accuracy, overlapping_group_report, worst_class_accuracy
from neurontune.core.scoring import NeuronScores, score_neurons, select_biased_neurons, spuriousness_fit
from neurontune.core.selection import SelectionSet, expand_grid, search_grid, select_neurontune

__all__ = [
    "LinearHead",
    "NeuronScores",
    "NeuronTune",
    "SelectionSet",
    "balanced_sample_weights",
    "expand_grid",
    "group_ids",
    "group_report",
    "head_logits",
    "head_predict",
    "keep_from_mask",
    "mean_accuracy",
    "overlapping_group_report",
    "per_group_accuracy",
    "retrain_head",
    "score_neurons",
    "search_grid",
    "select_biased_neurons",
    "select_neurontune",
    "spuriousness_fit",
    "worst_class_accuracy",
]
