"""Whether the data can serve a run.

``python -m unlearn_bench.data.check NAME [--offline] [--root DIR]``: exit 0 if dataset NAME (a file in
conf/data/) can be loaded here (locally or by download; with --offline only from a copy on this machine,
DIR tried first), else print why and exit 1. Used by ``make run`` and the GPU suite's paper stage.

``check_sizes``: whether every class holds enough images for the run's unseen pool
(``forget.unseen.per_class``, at most half of each class) and for what the method reads from that pool
(LRA-NPP's N), with a test split drawn first where the data come without one. Every shortfall is named in
one message, with the per-class count each setting needs, the count the data have, and the settings to
lower; validation calls it before anything is trained.
"""

import sys
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from unlearn_bench.config import CONFIG_DIR
from unlearn_bench.errors import ConfigError, DataError, DataNotFoundError


def main(name: str, cache_dir: str | None = None, offline: bool = False, root: str | None = None) -> int:
    cfg = OmegaConf.load(Path(CONFIG_DIR) / "data" / f"{name}.yaml")
    if offline and "download" in cfg:
        cfg.download = False
    if root and "root" in cfg:
        cfg.root = root
    source = instantiate(cfg)
    try:
        if hasattr(source, "resolve"):
            source.resolve(cache_dir)
    except (DataNotFoundError, DataError) as e:  # absent, or present but damaged
        print(f"{e}", file=sys.stderr)
        return 1
    return 0


# -- sizes ---------------------------------------------------------------------------------------------
def _lra_npp(method):
    from unlearn_bench.methods.lra_npp import LRANPP
    return method if isinstance(method, LRANPP) and method.n >= 1 else None


def unseen_needed(method) -> int:
    """Forget-class images the method needs in the unseen pool (0: no minimum). LRA-NPP analyses N of them;
    with ``h=auto`` it draws them from the analysis half of the pool, so the pool needs 2N - 1 (the bound
    ``LRANPP.validate`` enforces, stated here before the model is built)."""
    m = _lra_npp(method)
    if m is None:
        return 0
    return 2 * m.n - 1 if m.auto else m.n


def largest_n(method, pool: int) -> int:
    """The largest N that a pool of ``pool`` forget-class images allows (the inverse of ``unseen_needed``)."""
    return (pool + 1) // 2 if _lra_npp(method).auto else pool


def size_problems(cfg, method, counts, drawn: float | None = None,
                  estimated: bool = False) -> tuple[list[str], list[str]]:
    """(problems, fixes) of the unseen pool and of the method's N against ``counts``, the images per class
    of the split the pool is drawn from (``estimated``: worked out from a file whose split failed).
    ``drawn``: the test split is this share of a file that came without one (data.test_fraction)."""
    source = str(cfg.forget.unseen.source)
    split = "training" if source == "holdout" else "test"
    forget = sorted({int(c) for c in cfg.forget.classes})
    per_class = int(cfg.forget.unseen.per_class)
    counts = np.asarray(counts)
    smallest = int(np.argmin(counts))
    have = int(counts[smallest])
    limit = have // 2  # the pool holds out at most half of every class
    has = f"class {smallest} has {'about ' if estimated else ''}{have}"
    pool_for_n = unseen_needed(method)
    per_class_for_n = -(-pool_for_n // len(forget))
    pool = min(per_class, limit) * len(forget)  # the pool these data can give at this setting
    problems, fixes = [], []
    m = _lra_npp(method)
    if per_class > limit:
        problems.append(f"forget.unseen.per_class={per_class} needs >= {2 * per_class} {split} images in "
                        f"every class (the {source} pool is at most half a class), and {has}")
    if pool_for_n > pool:
        wanted = (f"method.n={m.n} needs a pool of >= {pool_for_n} unseen images of forget class(es) {forget}"
                  + (" (h=auto analyses them in half the pool)" if m.auto else ""))
        if per_class_for_n > limit:
            problems.append(f"{wanted}, i.e. forget.unseen.per_class>={per_class_for_n} and >= "
                            f"{2 * per_class_for_n} {split} images in every class"
                            + ("" if per_class > limit else f", and {has}"))
        else:
            problems.append(f"{wanted}, but forget.unseen.per_class={per_class} holds out {pool}")
    if limit >= 1 and problems:  # settings these data can serve
        if per_class > limit and pool_for_n > pool:
            fixes.append(f"set forget.unseen.per_class={limit} and method.n<={largest_n(method, pool)}")
        elif per_class > limit:
            fixes.append(f"set forget.unseen.per_class<={limit}"
                         + (f" (and >= {per_class_for_n} for method.n={m.n})" if per_class_for_n > 1 else ""))
        else:
            fixes.append(f"set method.n<={largest_n(method, pool)}")
            if per_class_for_n <= limit:
                fixes.append(f"set forget.unseen.per_class>={per_class_for_n} (these data allow up to "
                             f"{limit})")
            elif per_class < limit:
                fixes.append(f"set forget.unseen.per_class={limit} and method.n<="
                             f"{largest_n(method, limit * len(forget))}")
    need = 2 * max(per_class, per_class_for_n)
    if problems and need > have:
        limit_key = "data.train_limit" if split == "training" else "data.test_limit"
        limited = cfg.data.get(limit_key.split(".")[1]) is not None
        if limited:
            fixes.append(f"raise {limit_key}")
        if cfg.data.get("path"):  # a user's own data: more images are a fix too
            share = (1 - drawn if split == "training" else drawn) if drawn else None
            in_file = (f" (about {int(np.ceil(need / share))} in the file, before data.test_fraction={drawn} "
                       f"is split off)" if share and not limited else "")
            fixes.append(f"give every class >= {need} {split} images{in_file}")
    if problems and not fixes:
        fixes.append(f"use data with >= {need} {split} images in every class")
    return problems, fixes


def check_sizes(cfg, method, counts, what: str, drawn: float | None = None, split_error=None) -> None:
    """Raise one ConfigError naming every size problem at once: ``size_problems``, and ``split_error`` (a
    ``data.raw.TooFewToSplit`` raised while loading ``what``) first when given. One problem reads as one
    line; several as one short numbered list, with the settings to lower or the images to add."""
    estimated = split_error is not None
    if estimated:  # no split was made: the pool's split would hold about this share of every class
        f = split_error.test_fraction
        share = 1 - f if str(cfg.forget.unseen.source) == "holdout" else f
        counts, drawn = np.floor(np.asarray(split_error.counts) * share).astype(int), f
    problems, fixes = size_problems(cfg, method, counts, drawn, estimated)
    fix = ", or ".join(dict.fromkeys(fixes))
    if estimated:  # the split's own fix is needed whatever else is chosen
        problem = split_error.problem.removeprefix(f"{what}: ") if problems else split_error.problem
        problems, fix = [problem, *problems], "; ".join(x for x in (split_error.fix, fix) if x)
    if not problems:
        return
    if len(problems) == 1:
        raise ConfigError(f"{problems[0]}; fix: {fix}")
    listed = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
    raise ConfigError(f"{what} holds too few images for these settings ({len(problems)} problems): {listed}; "
                      f"fix: {fix}")


if __name__ == "__main__":
    import argparse
    import os
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("name")
    ap.add_argument("--offline", action="store_true",
                    help="never download: only a copy on this machine counts")
    ap.add_argument("--root", default=None, help="a folder holding the data set's files (data.root)")
    a = ap.parse_args()
    cache = os.environ.get("UNLEARN_BENCH_CACHE", str(Path.home() / ".cache/unlearn-bench"))
    sys.exit(main(a.name, cache, a.offline, a.root))
