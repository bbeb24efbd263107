"""Composing the real configuration tree outside ``@hydra.main`` (tests, experiments, notebooks)."""

from __future__ import annotations

from hydra import compose as _compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

from unlearn_bench.cli import CONFIG_DIR  # also registers the ub_join resolver


def compose(overrides=(), config_name: str = "config") -> DictConfig:
    """The config that ``unlearn-bench <overrides>`` would run, including ``hydra.runtime.choices``."""
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        return _compose(config_name, overrides=list(overrides), return_hydra_config=True)
