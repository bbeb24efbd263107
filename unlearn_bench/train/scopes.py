"""Two settings a run fixes once for every training inside it, whichever method trains: the numeric
precision and what happens to normalisation statistics. ``fit`` takes either as a keyword; left out, it
reads the enclosing scope's."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

PRECISIONS = {"32": "32-true", "bf16": "bf16-mixed"}  # the `precision` setting -> Lightning's name
NORM_STATS = ("update", "frozen")
_precision: ContextVar[str | None] = ContextVar("unlearn_bench_precision", default=None)
_norm_stats: ContextVar[str] = ContextVar("unlearn_bench_norm_stats", default="update")


def resolve_precision(setting: str, device: str) -> str:
    """Lightning's precision for the ``precision`` setting: ``auto`` is bf16 autocast on CUDA, fp32
    elsewhere."""
    if str(setting) == "auto":
        return PRECISIONS["bf16" if device.startswith("cuda") else "32"]
    return PRECISIONS[str(setting)]


def current_precision(device: str) -> str:
    """The enclosing ``precision_scope``'s precision, else the device's default."""
    return _precision.get() or resolve_precision("auto", device)


def current_norm_stats() -> str:
    """The enclosing ``norm_stats_scope``'s mode, else ``update``."""
    return _norm_stats.get()


@contextmanager
def precision_scope(precision: str):
    """Every ``fit`` inside trains at ``precision`` (a Lightning name), whichever method calls it: a run sets
    its precision once instead of threading it through every baseline."""
    token = _precision.set(precision)
    try:
        yield
    finally:
        _precision.reset(token)


def check_norm_stats(mode: str) -> str:
    if mode not in NORM_STATS:
        raise ValueError(f"norm_stats={mode!r} is not one of {NORM_STATS}")
    return mode


@contextmanager
def norm_stats_scope(mode: str):
    """Inside, every ``fit`` either updates BatchNorm running statistics as train mode does (``update``) or
    keeps them as they were (``frozen``: normalisation layers run in eval mode during the steps). A run
    sets it around its unlearning step only, so a method's forgetting can be told apart from statistics
    re-estimated on forget-only or noisy batches."""
    token = _norm_stats.set(check_norm_stats(mode))
    try:
        yield
    finally:
        _norm_stats.reset(token)
