"""Accuracy-type metrics over model outputs (pure functions, numpy in, numbers out).

Notation follows metrics.md: D_f forget set, D_r retain set, D_t test split. SalUn/Sparse (Fan et al. 2024;
Jia et al. 2023) report UA = 1 - Acc(D_f), RA = Acc(D_r), TA = Acc(retain-class test); LRA-NPP (Chang et al.
2024) reports At = Acc(D_f), Ag = Acc(D_r).
"""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, xlogy


def as_numpy(x, dtype=None) -> np.ndarray:
    """Array view of ``x``; torch tensors (even with grad, on GPU) are detached and moved to CPU."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _logits_labels(logits, labels) -> tuple[np.ndarray, np.ndarray]:
    z = as_numpy(logits, np.float64)
    y = as_numpy(labels).astype(np.int64).reshape(-1)
    if z.ndim != 2 or z.shape[0] != y.shape[0]:
        raise ValueError(f"expected logits (n, C) and labels (n,), got {z.shape} and {y.shape}")
    return z, y


def softmax(logits) -> np.ndarray:
    """Row-wise softmax exp(z_c - logsumexp(z)), stable for large logits."""
    z = as_numpy(logits, np.float64)
    return np.exp(z - logsumexp(z, axis=-1, keepdims=True))


def accuracy(logits, labels) -> float:
    """Top-1 accuracy: mean of [argmax_c z_c == y]. NaN for an empty set."""
    z, y = _logits_labels(logits, labels)
    if y.size == 0:
        return float("nan")
    return float(np.mean(z.argmax(axis=1) == y))


def per_class_accuracy(logits, labels, num_classes: int) -> np.ndarray:
    """Top-1 accuracy per true class, shape (num_classes,); NaN where a class has no samples."""
    z, y = _logits_labels(logits, labels)
    correct = (z.argmax(axis=1) == y).astype(np.float64)
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    hits = np.bincount(y, weights=correct, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, hits / counts, np.nan)


def cross_entropy_per_sample(logits, labels) -> np.ndarray:
    """Per-sample cross-entropy -log p_y = logsumexp(z) - z_y (natural log), shape (n,)."""
    z, y = _logits_labels(logits, labels)
    return logsumexp(z, axis=1) - z[np.arange(len(y)), y]


def entropy(probs) -> np.ndarray:
    """Shannon entropy -sum_c p_c log p_c (natural log) along the last axis; 0 log 0 = 0."""
    p = as_numpy(probs, np.float64)
    return -xlogy(p, p).sum(axis=-1)
