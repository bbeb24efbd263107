"""What a job returns to its sweeper: ``cfg.optimized_metric``, one metrics.json key (conf/config.yaml sets
``acc/forget_train``, ``experiment=tune`` the Avg. Gap to Retrain), or ``cfg.optimized_metric_failed_value``
for a run that failed (diverged) or has no such key. An Optuna sweeper minimises or maximises this value; the
basic sweeper ignores it. Neither key changes a run's results, so neither enters its identity."""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

from omegaconf import OmegaConf

from unlearn_bench.config import CONFIG_DIR
from unlearn_bench.errors import ConfigError

log = logging.getLogger("unlearn_bench")
KEY, FAILED = "optimized_metric", "optimized_metric_failed_value"


def _known(key: str) -> bool:
    """A key runs write: a metric of docs/metrics.md (also as ``original/``, ``retrain/``, ``_std``), or a
    method's own ``<method>/...`` key (LRA-NPP's ``lra_npp/h``, a baseline's ``<label>/final_loss``)."""
    from unlearn_bench.metrics.info import metric_info
    try:
        metric_info(key)
        return True
    except KeyError:
        methods = {p.stem for p in (Path(CONFIG_DIR) / "method").glob("*.yaml")}
        return "/" in key and key.split("/", 1)[0] in methods


def check_objective(cfg) -> None:
    """``ConfigError`` (one line) unless ``optimized_metric`` names a key runs write and the failed value is
    a number or null: a misspelled objective would otherwise score every trial of a study as failed."""
    key = OmegaConf.select(cfg, KEY, default=None)
    if key is not None and not _known(str(key)):
        from unlearn_bench.metrics.info import METRIC_INFO
        close = difflib.get_close_matches(str(key), list(METRIC_INFO), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(f"{KEY}={key} is not a key a run writes to metrics.json; fix: {hint}name one of "
                          f"the keys in docs/metrics.md, e.g. acc/forget_train or gap/avg_to_retrain")
    failed = OmegaConf.select(cfg, FAILED, default=None)
    if failed is not None and (isinstance(failed, bool) or not isinstance(failed, (int, float))):
        raise ConfigError(f"{FAILED}={failed} is not a number; fix: give the score a failed run should get "
                          f"(the worst one, e.g. 1.0 for gap/avg_to_retrain), or null")


def objective_value(cfg, metrics: dict | None) -> float | None:
    """The value a job returns to its sweeper for a run whose metrics.json content is ``metrics``."""
    key = OmegaConf.select(cfg, KEY, default=None)
    if key is None:
        return None
    failed = OmegaConf.select(cfg, FAILED, default=None)
    fallback = None if failed is None else float(failed)
    if not metrics or metrics.get("status") != "ok":
        return fallback  # diverged: the worst score the study allows, not a number the method never reached
    value = metrics.get(str(key))
    if isinstance(value, (int, float)):
        return float(value)
    keys = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
    log.warning("%s=%s is not in this run's metrics.json (it has %s); the sweeper gets %s", KEY, key,
                ", ".join(keys), fallback)
    return fallback
