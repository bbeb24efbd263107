"""A metric family: a named group of metrics.json keys computed together, with what it needs to run.

``conf/eval/<level>.yaml`` lists the families a run evaluates (``families: [...]``), in order. A name is
the module ``unlearn_bench.eval.families.<name>``; a dotted name (``mypkg.my_family``) is a module of its
own package. Either way the module exposes ``FAMILY``: adding a family is one file, no registry to edit.

A family declares
- ``info``: the ``MetricInfo`` of every key it writes (``unlearn_bench.metrics.info`` collects them into
  ``METRIC_INFO``, docs/metrics.md and the README table);
- ``needs(eval_cfg)``: the models it reads, by kind and number (``ORACLE``, ``SHADOW_PAIRS`` ...), under
  this evaluation's settings: what the listed families need decides what gets trained;
- ``version``: bumped when its values change for the same inputs; results it caches are keyed by it;
- ``enabled(eval_cfg)``: whether this evaluation's settings switch it on (listed but off: not run);
- ``compute(state) -> dict``: its keys, from an ``EvalState`` (``unlearn_bench.eval.state``), which builds
  each shared model or result once, on first use. Artifacts (per_class.csv, roc.csv) are families that
  write a file and return no key.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from unlearn_bench.errors import ConfigError

# What a family can need, beside the run's own models and logits (always there)
ORACLE = "oracle"  # the retrain oracle, trained if not cached
CACHED_ORACLE = "cached_oracle"  # the oracle, only when it is cached already
RANDOM_MODEL = "random_model"  # a randomly initialised model of the run's architecture
SHADOW_PAIRS = "shadow_pairs"  # U-LiRA's (original, retrain) shadow pairs on halves of D_r
RETRAINS = "retrains"  # retrains beside the oracle (forgetting quality's N - 1, their twins)
ORIGINALS = "originals"  # originals beside the run's own (KLOM's N - 1)
METHOD_RUNS = "method_runs"  # reruns of the method under test on reference models
NEEDS = (ORACLE, CACHED_ORACLE, RANDOM_MODEL, SHADOW_PAIRS, RETRAINS, ORIGINALS, METHOD_RUNS)

PACKAGE = "unlearn_bench.eval.families"


class MetricInfo(NamedTuple):
    """What a metrics.json key means. Direction is one of "higher", "lower", "closer_to_retrain" ("n/a" for
    bookkeeping); references are for class forgetting (the harness' setting), "compare with Retrain" means
    the oracle's own value is the target and has no fixed number."""
    description: str
    direction: str
    retrain_reference: str
    source: str


def _no_needs(ev) -> dict[str, int]:
    return {}


def _always(ev) -> bool:
    return True


@dataclass(frozen=True)
class Family:
    name: str
    compute: Callable  # (EvalState) -> dict of metrics.json keys
    info: Mapping[str, MetricInfo] = field(default_factory=dict)
    needs: Callable = _no_needs  # (eval config) -> {need: how many}
    version: int = 1
    enabled: Callable = _always  # (eval config) -> whether its settings switch it on (eval.relearn ...)


def resolve(name: str) -> Family:
    """The family ``name`` names (see the module docstring); ConfigError when there is none."""
    module_name = name if "." in name else f"{PACKAGE}.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is None or not module_name.startswith(e.name):  # the family's own import failed
            raise
        raise ConfigError(f"eval.families: no metric family {name!r} (no module {module_name}); fix: use one "
                          f"of {', '.join(shipped())} or a module exposing FAMILY") from e
    family = getattr(module, "FAMILY", None)
    if not isinstance(family, Family):
        raise ConfigError(f"eval.families: module {module_name} has no FAMILY (an "
                          f"unlearn_bench.eval.family.Family); fix: define one or drop {name!r}")
    return family


def check(ev) -> None:
    """ConfigError unless ``ev.families`` (when set) is a list of names that each resolve to a family: a
    misspelt family would otherwise leave its keys out of every run of a sweep."""
    names = ev.get("families")
    if names is None:
        return
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"eval.families={names!r} is not a list of family names; fix: e.g. "
                          f"eval.families=[accuracy,population]")
    for name in names:
        resolve(name)


def shipped() -> list[str]:
    """Every family of this package, by name."""
    import pkgutil
    package = importlib.import_module(PACKAGE)
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))


def listed(ev) -> list[str]:
    """The families an eval config runs: its ``families``, or those every level ran before conf/eval
    listed them (a config saved by an older version)."""
    from unlearn_bench.run.identity import LEGACY_FAMILIES
    names = ev.get("families")
    return [str(n) for n in (LEGACY_FAMILIES if names is None else names)]


def active(ev) -> list[Family]:
    """The families an evaluation runs: those it lists that its settings switch on (``enabled``)."""
    return [f for f in (resolve(name) for name in listed(ev)) if f.enabled(ev)]


def plan(families: list[Family], ev) -> dict[str, int]:
    """What the families need together: each kind of model at the largest number any of them asks for
    (a family its settings switch off needs nothing). The oracle is trained when one needs it; otherwise
    it is used if one can use it and it is cached."""
    out: dict[str, int] = {}
    for family in (f for f in families if f.enabled(ev)):
        for need, n in family.needs(ev).items():
            if need not in NEEDS:
                raise ValueError(f"metric family {family.name!r} needs {need!r}, not one of {NEEDS}")
            if n:
                out[need] = max(out.get(need, 0), int(n))
    if ORACLE in out:
        out.pop(CACHED_ORACLE, None)
    return out
