"""Unlearning metrics: pure functions from model outputs (numpy arrays) to numbers.

Each metric documents its direction and retrain reference; the metric families that report them state
their keys' ``MetricInfo`` (collected in ``unlearn_bench.metrics.info.METRIC_INFO``, which this package
does not import: it imports the families).
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
