"""A run's evaluation: the metric families ``eval.families`` lists (``conf/eval``) and its settings switch on
(``Family.enabled``), in order, from the
models and logits the pipeline hands over; what they need (``family.plan``) decides which reference
models are trained. Families: ``unlearn_bench/eval/families/`` (``unlearn_bench.eval.family``)."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from unlearn_bench.eval import family as families
from unlearn_bench.eval import suite
from unlearn_bench.eval.state import EvalState

log = logging.getLogger("unlearn_bench")


def evaluate(ctx, store, run_dir: Path, logger, original, meta_o, unlearned, logits_o, logits_u, labels):
    """Every key of the listed families; writes their artifacts (per_class.csv, roc.csv). Returns the
    metrics and the arrays predictions.npz gets beside the logits: the oracle's logits when the oracle was
    used, per-example KLOM."""
    ev = ctx.cfg.eval
    listed = families.active(ev)
    needs = families.plan(listed, ev)
    log.info("%s: evaluating %s%s", ctx.method_label, ", ".join(f.name for f in listed),
             f" (needs {', '.join(f'{k} x{n}' for k, n in needs.items())}; reference models train where they "
             "are not cached)" if needs else "")
    state = EvalState(ctx, store, run_dir, logger, original, meta_o, unlearned, logits_o, logits_u, labels,
                      needs)
    out: dict = {}
    for family in listed:
        out.update(family.compute(state))
    if state.tables:
        logger.log_tables(state.tables.get("per_class", pd.DataFrame()),
                          state.tables.get("roc", suite.strongest_roc({})))
    logits_r = state.oracle_logits() if families.ORACLE in needs or families.CACHED_ORACLE in needs else None
    arrays = {f"retrain_logits_{k}": v for k, v in (logits_r or {}).items()}
    arrays.update(state.arrays)
    return out, arrays
