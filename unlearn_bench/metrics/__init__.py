"""Unlearning metrics: pure functions from model outputs (numpy arrays) to numbers.

Each metric documents its direction and retrain reference; see ``METRIC_INFO`` for the reported keys.
"""
from .accuracy import (
    accuracy,
    as_numpy,
    cross_entropy_per_sample,
    entropy,
    per_class_accuracy,
    softmax,
)
from .divergence import avg_gap, js_divergence, js_divergence_per_sample, relearn_ain, zrf
from .forgetting_quality import (
    epsilon_from_rates,
    epsilon_points,
    example_epsilon,
    example_epsilons,
    final_score,
    forgetting_quality,
)
from .info import METRIC_INFO, MetricInfo, metric_info_markdown
from .klom import klom_null, klom_per_example, klom_stats, klom_summary
from .mia import (
    draw_seed,
    entropy_member_rate,
    logistic_regression_1d,
    logit_scaled_confidence,
    loss_cv_accuracies,
    loss_cv_mia,
    lra_fr,
    lra_fs,
    roc_curve_points,
    roc_summary,
    svc_confidence_mia,
    true_class_confidence,
    ulira,
    ulira_scores,
)

__all__ = [
    "METRIC_INFO",
    "MetricInfo",
    "accuracy",
    "as_numpy",
    "avg_gap",
    "cross_entropy_per_sample",
    "draw_seed",
    "entropy",
    "entropy_member_rate",
    "epsilon_from_rates",
    "epsilon_points",
    "example_epsilon",
    "example_epsilons",
    "final_score",
    "forgetting_quality",
    "js_divergence",
    "js_divergence_per_sample",
    "klom_null",
    "klom_per_example",
    "klom_stats",
    "klom_summary",
    "logistic_regression_1d",
    "logit_scaled_confidence",
    "loss_cv_accuracies",
    "loss_cv_mia",
    "lra_fr",
    "lra_fs",
    "metric_info_markdown",
    "per_class_accuracy",
    "relearn_ain",
    "roc_curve_points",
    "roc_summary",
    "softmax",
    "svc_confidence_mia",
    "true_class_confidence",
    "ulira",
    "ulira_scores",
    "zrf",
]
