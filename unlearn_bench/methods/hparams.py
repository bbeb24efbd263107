"""A method's hyperparameters, declared once on its class (``Method.hparams``: name -> spec) with their
type, allowed range and, where tuning makes sense, their search range. From the declarations come

- the checks of ``method.*`` values, run on the configuration before anything is built
  (``check_method_config``) and on every direct construction (``Method.__new__``), each failure a
  one-line ``ConfigError`` naming the key, the value and what is allowed;
- the Optuna search spaces ``conf/hydra/sweeper/optuna_<method>.yaml`` (``search_spaces``), written by
  ``python -m unlearn_bench.methods.hparams --write conf/hydra/sweeper`` and compared with the shipped
  files by ``--check`` (and by tests/test_hparams.py), so the two cannot drift apart.

Checks that need the model or the data (a layer's width, the unseen pool's size) stay in ``validate``.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearn_bench.errors import ConfigError

_NAMES = {int: "int", float: "float", bool: "true or false", str: "str", list: "list"}


def _is(value, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is list:
        return isinstance(value, Sequence) and not isinstance(value, str)
    return isinstance(value, kind)


def _num(v: float) -> str:
    """A bound as a reader writes it: 1e-4 rather than 0.0001, 0.1 rather than 1e-1."""
    if isinstance(v, float) and v != 0 and abs(v) < 1e-3:
        mantissa, exp = f"{v:e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exp)}"
    return repr(v)


@dataclass(frozen=True)
class HP:
    """One hyperparameter: its type (``int``, ``float``, ``bool``, ``str`` or ``list``), the bounds of a
    number (``gt``/``ge``/``lt``/``le``), the only values a string may take (``choices``), further values
    the setting accepts (``also``, e.g. ``"auto"``; ``null``: None, "derived from the data or recipe"),
    the type of a list's items (``of``) and the search range of a sweep (``search``, set by ``tune``)."""

    kind: type
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] = ()
    also: tuple[str, ...] = ()
    null: bool = False
    of: type | None = None
    search: str | None = None

    # -- what is allowed ---------------------------------------------------------------------------------
    def bounds(self) -> str:
        lo = hi = ""
        if self.gt is not None or self.ge is not None:
            lo = f"({_num(self.gt)}" if self.gt is not None else f"[{_num(self.ge)}"
        if self.lt is not None or self.le is not None:
            hi = f"{_num(self.lt)})" if self.lt is not None else f"{_num(self.le)}]"
        if lo and hi:
            return f"in {lo}, {hi}"
        if lo:
            return f"{'>' if lo[0] == '(' else '>='} {lo[1:]}"
        return f"{'<' if hi[-1] == ')' else '<='} {hi[:-1]}" if hi else ""

    def types(self) -> str:
        name = f"list of {_NAMES[self.of]}" if self.kind is list and self.of else _NAMES[self.kind]
        names = [name if not self.choices else "one of " + ", ".join(self.choices), *self.also]
        return " or ".join(names + (["null"] if self.null else []))

    def wanted(self) -> str:
        """What a valid value is, as a fix names it: "an int >= 1 or null", "a list of str"."""
        if self.kind in (int, float):
            what = f"{'an int' if self.kind is int else 'a number'} {self.bounds()}".rstrip()
        elif self.kind is list:
            what = f"a list of {_NAMES[self.of]}" if self.of else "a list"
        else:
            what = _NAMES[self.kind]
        return " or ".join([what, *self.also] + (["null"] if self.null else []))

    def problem(self, key: str, value: Any) -> str | None:
        """Why ``value`` is not allowed for ``key`` (one line: problem; fix), or None when it is."""
        if value is None and self.null or isinstance(value, str) and value in self.also:
            return None
        if self.choices:
            if value in self.choices:
                return None
            fix = " or ".join(f"{key}={c}" for c in self.choices)
            return f"{key}={value!r} is not {self.types()}; fix: set {fix}"
        if not _is(value, self.kind) or self.of and not all(_is(v, self.of) for v in value):
            return f"{key}={value!r} is not {self.types()}; fix: set {key} to {self.wanted()}"
        inside = ((self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
                  and (self.lt is None or value < self.lt) and (self.le is None or value <= self.le))
        if self.kind in (int, float) and not inside:
            return f"{key}={value!r} must be {self.bounds()}; fix: set {key} to {self.wanted()}"
        return None

    # -- the search range --------------------------------------------------------------------------------
    def tune(self, *values, log: bool = False) -> HP:
        """This spec with a search range: ``(low, high)`` for a number (``log``: sampled on a log scale), or
        the choices a sweep tries (all of them when none are named)."""
        if self.choices:
            picked = values or self.choices
            bad = [v for v in picked if v not in self.choices]
            if bad:
                raise ValueError(f"{bad} are not choices of this hyperparameter")
            return dataclasses.replace(self, search=f"choice({', '.join(picked)})")
        low, high = values
        for v in (low, high):
            if self.problem("search bound", v):
                raise ValueError(self.problem("search bound", v))
        space = f"interval({_num(low)}, {_num(high)})"
        space = f"int({space})" if self.kind is int else space
        return dataclasses.replace(self, search=f"tag(log, {space})" if log else space)


def Int(**kw) -> HP:  # noqa: N802 -- read as a type in the declarations
    return HP(int, **kw)


def Float(**kw) -> HP:  # noqa: N802
    return HP(float, **kw)


def Bool(**kw) -> HP:  # noqa: N802
    return HP(bool, **kw)


def Choice(*choices: str, **kw) -> HP:  # noqa: N802
    return HP(str, choices=tuple(choices), **kw)


def List(of: type | None = None, **kw) -> HP:  # noqa: N802
    return HP(list, of=of, **kw)


# -- checks -------------------------------------------------------------------------------------------------
def check_hyperparameters(cls: type, values: Mapping[str, Any], prefix: str = "method") -> None:
    """Every value in ``values`` against ``cls.hparams``: an undeclared name, a wrong type or a value out of
    range is a one-line ConfigError. A class that declares nothing is checked only if its constructor takes
    nothing either (then every name is unknown)."""
    specs = getattr(cls, "hparams", None) or {}
    if not specs and _takes_arguments(cls):
        return
    for name, value in values.items():
        if str(name).startswith("_"):
            continue
        key = f"{prefix}.{name}"
        if name not in specs:
            known = f" or set one of {', '.join(specs)}" if specs else ""
            raise ConfigError(f"{key}={value!r} is not a hyperparameter of {cls.__name__}, so the method "
                              f"cannot be built; fix: remove it{known}")
        problem = specs[name].problem(key, value)
        if problem:
            raise ConfigError(problem)


def _takes_arguments(cls: type) -> bool:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return bool(params)


def check_method_config(method: Mapping[str, Any]) -> None:
    """The ``method`` node of a run's configuration (resolved, ``_target_`` included), before anything is
    built. A target that cannot be imported is left to the construction, which reports it."""
    from hydra.utils import get_class
    try:
        cls = get_class(method["_target_"])
    except Exception:  # noqa: BLE001 -- an unresolvable target is reported when it is built
        return
    check_hyperparameters(cls, method)


def check_arguments(cls: type, args: tuple, kwargs: dict) -> None:
    """The constructor's explicit arguments against the declarations; arguments the signature does not take
    are left to ``__init__`` to refuse."""
    if not (args or kwargs) or not getattr(cls, "hparams", None):
        return
    try:
        bound = inspect.signature(cls.__init__).bind_partial(None, *args, **kwargs)
    except TypeError:
        return
    check_hyperparameters(cls, {k: v for k, v in list(bound.arguments.items())[1:] if k in cls.hparams})


# -- search spaces ------------------------------------------------------------------------------------------
HEADER = ("# The search space of method={label}: generated from the `hparams` of {target}\n"
          "# by `python -m unlearn_bench.methods.hparams --write conf/hydra/sweeper`; edit those, not this"
          " file.\n# Budget, sampler and seed: optuna_fair.yaml, alike for all methods.\n")


def method_targets(config_dir: Path) -> dict[str, str]:
    """``_target_`` of every method configuration that names one, by label (``conf/method/<label>.yaml``)."""
    from omegaconf import OmegaConf
    out = {}
    for path in sorted((Path(config_dir) / "method").glob("*.yaml")):
        target = OmegaConf.load(path).get("_target_")
        if target:
            out[path.stem] = str(target)
    return out


def search_spaces(config_dir: Path) -> dict[str, str]:
    """File name -> text of every generated sweeper file: one per method class that declares a search
    range, named after the class's module (``baselines.ssd`` -> ``optuna_ssd.yaml``), whose own method
    configuration must exist (``conf/method/ssd.yaml``)."""
    from hydra.utils import get_class
    labels = method_targets(config_dir)
    out = {}
    for target in sorted(set(labels.values())):
        cls = get_class(target)
        params = {n: s.search for n, s in (getattr(cls, "hparams", None) or {}).items() if s.search}
        if not params:
            continue
        label = cls.__module__.rsplit(".", 1)[-1]
        if labels.get(label) != target:
            raise ValueError(f"{target} declares a search range but conf/method/{label}.yaml does not "
                             f"build it")
        lines = inspect.cleandoc(getattr(cls, "search_note", "")).splitlines()
        note = "".join(f"# {line}\n" for line in lines)
        body = "".join(f"  method.{n}: {space}\n" for n, space in params.items())
        out[f"optuna_{label}.yaml"] = (HEADER.format(label=label, target=target) + note
                                       + "defaults:\n  - optuna_fair\n\nparams:\n" + body)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    from unlearn_bench.config import CONFIG_DIR
    parser = argparse.ArgumentParser(prog="python -m unlearn_bench.methods.hparams", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", metavar="DIR", help="write the optuna_<method>.yaml files into DIR")
    action.add_argument("--check", metavar="DIR", help="exit 1 if DIR's files differ from the declarations")
    a = parser.parse_args(argv)
    spaces = search_spaces(Path(CONFIG_DIR))
    folder = Path(a.write or a.check)
    if a.write:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in spaces.items():
            (folder / name).write_text(text)
        return 0
    stale = sorted(n for n, t in spaces.items()
                   if not (folder / n).is_file() or (folder / n).read_text() != t)
    if stale:
        print(f"out of date: {', '.join(stale)}; fix: python -m unlearn_bench.methods.hparams --write "
              f"{folder}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
