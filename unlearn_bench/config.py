"""Composing the real configuration tree outside ``@hydra.main`` (tests, experiments, notebooks)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose as _compose
from hydra import initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from unlearn_bench.cli import CONFIG_DIR  # also registers the ub_join and ub_mseed resolvers


def compose(overrides=(), config_name: str = "config") -> DictConfig:
    """The config that ``unlearn-bench <overrides>`` would run, including ``hydra.runtime.choices``."""
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        return _compose(config_name, overrides=list(overrides), return_hydra_config=True)


# Keys that set how long a method works (``epochs``, ``max_steps``, ``impair_epochs``, ``iterations``, ...)
BUDGET_SUFFIXES = ("epochs", "steps", "iterations")


def minimal_budget(method: str) -> list[str]:
    """Overrides that cut every budget key of ``conf/method/<method>.yaml`` holding an integer > 1 to 1: the
    method's code path at the least cost (smoke tests, CPU runs of the end-to-end benchmark)."""
    node = OmegaConf.load(Path(CONFIG_DIR) / "method" / f"{method}.yaml")
    return [f"method.{k}=1" for k, v in node.items()
            if str(k).endswith(BUDGET_SUFFIXES) and isinstance(v, int) and not isinstance(v, bool) and v > 1]
