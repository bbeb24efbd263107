"""Collecting model outputs: each model runs once per split, in large batches, under inference mode.
Metrics (``unlearn_bench.metrics``) are computed afterwards from these arrays."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from unlearn_bench.methods.base import Subset

SPLITS = ("forget_train", "retain_train", "forget_test", "retain_test", "unseen")


@torch.inference_mode()
def predict_logits(model: nn.Module, subset: Subset, batch_size: int = 4096) -> np.ndarray:
    model.eval()
    x = subset.x
    cuda = x.is_cuda
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    out = []
    with autocast:
        for i in range(0, len(x), batch_size):
            xb = subset.normalize(x[i:i + batch_size])
            if subset.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            out.append(model(xb).float())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(out).cpu().numpy()


def collect(model: nn.Module, subsets: dict[str, Subset], batch_size: int = 4096) -> dict[str, np.ndarray]:
    return {name: predict_logits(model, s, batch_size) for name, s in subsets.items()}


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0:
        return float("nan")
    return float((logits.argmax(1) == labels).mean())


def accuracies(logits: dict[str, np.ndarray], labels: dict[str, np.ndarray], prefix: str = "") -> dict:
    out = {f"{prefix}acc/{s}": accuracy(logits[s], labels[s]) for s in SPLITS if s in logits}
    test_logits = np.concatenate([logits["forget_test"], logits["retain_test"]])
    test_labels = np.concatenate([labels["forget_test"], labels["retain_test"]])
    out[f"{prefix}acc/test"] = accuracy(test_logits, test_labels)
    return out
