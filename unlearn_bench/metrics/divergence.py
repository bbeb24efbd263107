"""Output-distribution distances and gaps to the retrained oracle (pure functions)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.special import xlogy

from .accuracy import softmax


def js_divergence_per_sample(p_logits, q_logits) -> np.ndarray:
    """Jensen-Shannon divergence (natural log, in [0, ln 2]) between softmax(p) and softmax(q), per row.

    JS(P, Q) = KL(P || M)/2 + KL(Q || M)/2 with M = (P + Q)/2.
    """
    p, q = softmax(p_logits), softmax(q_logits)
    if p.shape != q.shape:
        raise ValueError(f"logit shapes differ: {p.shape} vs {q.shape}")
    m = 0.5 * (p + q)
    kl_pm = (xlogy(p, p) - xlogy(p, m)).sum(axis=-1)
    kl_qm = (xlogy(q, q) - xlogy(q, m)).sum(axis=-1)
    return np.maximum(0.5 * (kl_pm + kl_qm), 0.0)  # clamp float round-off below 0


def js_divergence(p_logits, q_logits) -> float:
    """Mean Jensen-Shannon divergence (natural log) between two models' softmax outputs on the same samples.

    Used as a distance to the retrained model on D_f and D_t (dist/js_*; lower = closer, Retrain = 0).
    """
    return float(np.mean(js_divergence_per_sample(p_logits, q_logits)))


def zrf(unlearned_logits, random_logits) -> float:
    """ZRF of Bad Teacher (Chundawat et al., AAAI'23): 1 - mean JS(theta_u, theta_rand) on D_f.

    JS between the unlearned model's and a randomly initialised model's softmax on D_f (natural log, so
    ZRF in [1 - ln 2, 1]); higher = the forget outputs look more like a random model. Compare with
    Retrain's ZRF.
    """
    return 1.0 - js_divergence(unlearned_logits, random_logits)


def avg_gap(unlearned: Mapping[str, float], retrain: Mapping[str, float],
            keys: Sequence[str] = ("ua", "ra", "ta", "mia_efficacy")) -> float:
    """Avg. Gap of SalUn (Fan et al., ICLR'24): mean over ``keys`` of |metric(theta_u) - metric(theta_r)|.

    Both dicts must hold every key, on the same scale. Lower = closer to Retrain; Retrain = 0.
    """
    missing = [k for k in keys if k not in unlearned or k not in retrain]
    if missing or not keys:
        raise KeyError(f"avg_gap needs keys {list(keys)} in both dicts; missing {missing}")
    return float(np.mean([abs(float(unlearned[k]) - float(retrain[k])) for k in keys]))


def relearn_ain(steps_unlearned: float, steps_retrain: float) -> float:
    """Anamnesis index (Chundawat et al., "Zero-shot machine unlearning", TIFS'23): rt(theta_u) / rt(theta_r).

    rt = fine-tuning steps on D_f to regain 95% of the original forget accuracy. ~1 is ideal; << 1 means the
    knowledge was hidden, not removed. NaN when both are 0, inf when only the retrain count is 0.
    """
    su, sr = float(steps_unlearned), float(steps_retrain)
    if sr == 0.0:
        return float("nan") if su == 0.0 else float("inf")
    return su / sr
