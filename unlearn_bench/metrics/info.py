"""What every metrics.json key means (``METRIC_INFO``): the ``MetricInfo`` each metric family states
(``unlearn_bench/eval/families/``, one file each) and the keys the pipeline writes itself
(``HARNESS_INFO``: cost); docs/metrics.md and the README's metric table are generated from it:

    python -m unlearn_bench.metrics.info > docs/metrics.md
"""
from __future__ import annotations

from unlearn_bench.eval import family as families
from unlearn_bench.eval.families._sources import HARNESS, LRA_NPP
from unlearn_bench.eval.family import MetricInfo

HARNESS_INFO: dict[str, MetricInfo] = {
    "cost/unlearn_s": MetricInfo("wall-clock seconds of the unlearning step alone (GPU synchronised)",
                                 "lower", "retrain's time (the budget to beat)", "metrics.md (cost)"),
    "cost/peak_mem_mb": MetricInfo("peak memory in MiB of the unlearning step (GPU max_memory_allocated; "
                                   "CPU: peak resident memory added during the step, sampled every 5 ms)",
                                   "lower", "retrain's peak", f"{LRA_NPP} (G)"),
    "cost/eval_s": MetricInfo("wall-clock seconds of the whole evaluation: output collection, attacks, "
                              "oracle (trained here if eval.retrain and not cached), relearn, reference "
                              "models; not part of the method's cost", "lower", "n/a", HARNESS),
}

# The order the tables have always listed keys in (README and docs/metrics.md are compared with them byte for
# byte): the metrics of these families, the harness' cost keys, then the evaluation's bookkeeping keys
# (eval/*) of these; a family not in DOC_ORDER follows, by name.
DOC_ORDER = ("accuracy", "population", "oracle", "zrf", "relearn", "ulira", "fq", "klom")
BOOKKEEPING_ORDER = ("oracle", "ulira", "klom", "population", "fq")
BOOKKEEPING = "eval/"


def collect(names: list[str] | None = None) -> dict[str, MetricInfo]:
    """Every family's keys (``names``: those families only), in the tables' order; a key two families
    describe is an error (one of them would silently win)."""
    names = families.shipped() if names is None else names
    infos = {n: dict(families.resolve(n).info) for n in names}
    known = [n for n in DOC_ORDER if n in infos]
    book = [n for n in BOOKKEEPING_ORDER if n in infos] + [n for n in known if n not in BOOKKEEPING_ORDER]
    parts = [{k: v for k, v in infos[n].items() if not k.startswith(BOOKKEEPING)} for n in known]
    parts.append(HARNESS_INFO)
    parts += [{k: v for k, v in infos[n].items() if k.startswith(BOOKKEEPING)} for n in book]
    parts += [infos[n] for n in sorted(infos) if n not in DOC_ORDER]
    out: dict[str, MetricInfo] = {}
    for part in parts:
        for key, value in part.items():
            if key in out:
                raise ValueError(f"metric key {key!r} is described by two families")
            out[key] = value
    return out


METRIC_INFO: dict[str, MetricInfo] = collect()

# The same metric measured on a reference model instead of the unlearned one: the rows tables compare with.
MODEL_PREFIXES = {"original/": "the original model", "retrain/": "the retrained oracle"}


STD_SUFFIX = "_std"


def metric_info(key: str) -> MetricInfo:
    """Info for a metrics.json key, including ``original/<key>``, ``retrain/<key>`` and ``<key>_std`` (the
    spread over attack draws). KeyError if unknown."""
    if key in METRIC_INFO:
        return METRIC_INFO[key]
    if key.endswith(STD_SUFFIX):
        info = metric_info(key[:-len(STD_SUFFIX)])
        return MetricInfo("standard deviation (ddof = 1) over eval.mia_draws attack draws of: "
                          f"{info.description}", "n/a", "n/a", info.source)
    for prefix, who in MODEL_PREFIXES.items():
        if key.startswith(prefix) and key[len(prefix):] in METRIC_INFO:
            info = METRIC_INFO[key[len(prefix):]]
            return info._replace(description=f"{info.description} -- of {who}")
    raise KeyError(f"{key} is not described in METRIC_INFO")


NOT_COMPUTED = (
    "Not computed: RMIA (Zarifzadeh et al. 2024). Its offline form calibrates a target's confidence on x by "
    "reference models that never trained on x; in class forgetting those models never saw the class, so "
    "their confidence on every forget example is about 0, the calibration is a constant, and the attack "
    "ranks D_f by the target's own confidence, which `mia/loss_cv_acc` already does. Its online form needs "
    "reference models trained on D_f, which is U-LiRA's \"in\" side (`mia/ulira_*`).\n")


def metrics_doc() -> str:
    """The content of docs/metrics.md (regenerate: ``python -m unlearn_bench.metrics.info >
    docs/metrics.md``)."""
    prefixes = ", ".join(f"`{p}<key>` ({w})" for p, w in MODEL_PREFIXES.items())
    return ("# Metrics\n\nEvery key a run writes to `metrics.json`, its direction and the value the retrain "
            "oracle takes (class forgetting). Generated from the metric families (`unlearn_bench/eval/"
            "families/`, one file each; collected in `unlearn_bench.metrics.info.METRIC_INFO`); "
            "definitions in `unlearn_bench/metrics/` and `unlearn_bench/eval/suite.py`.\n\n"
            f"The same key under {prefixes} is that metric measured on the reference model, so tables show "
            "the direction. A key whose value is a mean over attack draws has its spread (standard deviation "
            f"over the `eval/mia_draws` draws, ddof = 1) under `<key>{STD_SUFFIX}`.\n\n"
            "Directions are checked against measurement (tests/test_metric_directions.py): where the oracle "
            "is not at an extreme of a metric's range, the direction is `closer_to_retrain`, and no "
            "`higher`/`lower` metric ranks a collapsed model (retain accuracy at chance) above the "
            "oracle.\n\n"
            + metric_info_markdown() + "\n" + NOT_COMPUTED)


def metric_info_markdown() -> str:
    """Markdown table of METRIC_INFO for the README."""
    rows = ["| metric | description | better | retrain reference | source |", "|---|---|---|---|---|"]
    for key, info in METRIC_INFO.items():
        cells = [f"`{key}`"] + [str(v).replace("|", "\\|") for v in info]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(metrics_doc(), end="")
