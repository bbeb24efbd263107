"""Forget/retain splits and the unseen pool, written to ``split.json`` in every run directory.

The unseen pool is a per-class set of training images held out *before* the original model is trained
(``source="holdout"``), so zero-shot methods get images the model never saw and the test split stays
clean. ``source="test"`` reproduces the LRA-NPP authors' protocol: the pool comes from the test split and
is excluded from every test metric.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Split:
    forget_classes: list[int]
    unseen_source: str
    train_idx: list[int]  # training indices the original model sees (train minus the holdout pool)
    forget_train: list[int]  # D_f, indices into the train split
    retain_train: list[int]  # D_r
    forget_test: list[int]  # indices into the test split
    retain_test: list[int]
    unseen: dict[int, list[int]] = field(default_factory=dict)  # class -> indices (train or test split)

    def unseen_of(self, classes) -> np.ndarray:
        return np.concatenate([np.asarray(self.unseen[int(c)], dtype=np.int64) for c in classes])

    def save(self, path: str | Path) -> None:
        d = asdict(self)
        d["unseen"] = {str(k): v for k, v in self.unseen.items()}
        Path(path).write_text(json.dumps(d))

    @classmethod
    def load(cls, path: str | Path) -> Split:
        d = json.loads(Path(path).read_text())
        d["unseen"] = {int(k): v for k, v in d["unseen"].items()}
        return cls(**d)


def holdout_pool(labels: np.ndarray, num_classes: int, per_class: int, seed: int) -> dict[int, list[int]]:
    """``per_class`` seeded indices of every class (all classes, so the original model does not depend
    on which class is forgotten and one cached original serves every forget class)."""
    rng = np.random.default_rng(seed)
    pool = {}
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        pool[c] = sorted(rng.choice(idx, size=min(per_class, len(idx)), replace=False).tolist())
    return pool


def make_split(train_y: np.ndarray, test_y: np.ndarray, num_classes: int, forget_classes, source: str,
               per_class: int, seed: int) -> Split:
    forget = sorted({int(c) for c in forget_classes})
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    if source == "holdout":
        pool = holdout_pool(train_y, num_classes, per_class, seed)
        train_idx = np.setdiff1d(np.arange(len(train_y)), np.concatenate(list(pool.values())))
        test_idx = np.arange(len(test_y))
    elif source == "test":
        pool = holdout_pool(test_y, num_classes, per_class, seed)
        train_idx = np.arange(len(train_y))
        test_idx = np.setdiff1d(np.arange(len(test_y)), np.concatenate(list(pool.values())))
    else:
        raise ValueError(f"unknown unseen source {source!r}")
    in_forget_tr = np.isin(train_y[train_idx], forget)
    in_forget_te = np.isin(test_y[test_idx], forget)
    return Split(
        forget_classes=forget, unseen_source=source, train_idx=train_idx.tolist(),
        forget_train=train_idx[in_forget_tr].tolist(), retain_train=train_idx[~in_forget_tr].tolist(),
        forget_test=test_idx[in_forget_te].tolist(), retain_test=test_idx[~in_forget_te].tolist(),
        unseen=pool,
    )
