"""The command line checked before Hydra starts: ``preflight`` composes it once with Hydra's compose API, so
an unknown group option, a misspelled key or a malformed override ends in one ``error: ...`` line (exit 2)
instead of Hydra's multi-line report, and so do a run folder that cannot be written, an unsafe ``name`` and
an ``optimized_metric`` no run writes. Valid command lines go to Hydra unchanged."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

from omegaconf import OmegaConf

from unlearn_bench.cli.objective import check_objective
from unlearn_bench.config import CONFIG_DIR, first_values
from unlearn_bench.errors import ConfigError, one_line


def _keys(node, prefix: str = "") -> list[str]:
    """Every dotted key of a composed config (interpolations left unresolved)."""
    out = []
    for k in node.keys() if OmegaConf.is_dict(node) else []:
        key = f"{prefix}{k}"
        out.append(key)
        child = node._get_node(k)
        if OmegaConf.is_dict(child):
            out += _keys(child, key + ".")
    return out


def preflight(args: list[str], config_name: str = "config", multirun: bool = False) -> None:
    """Raise ``ConfigError`` (one line) if Hydra could not compose ``args``; a valid line passes silently."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException, OverrideParseException

    try:
        overrides = OverridesParser.create().parse_overrides(args)
    except OverrideParseException as e:
        raise ConfigError(f"cannot parse the override ({one_line(e)}); fix: write key=value, "
                          f"quote values with spaces or brackets") from e
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        for o in overrides:
            options = loader.get_group_options(o.key_or_group) if not o.is_delete() else []
            if not options:
                continue
            values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.value()]
            bad = [v for v in values if str(v) not in options]  # null too: Hydra takes no null for a group
            if bad:
                shown = "null" if bad[0] is None else bad[0]
                raise ConfigError(f"{o.key_or_group}={shown} is not an option of group {o.key_or_group}; "
                                  f"fix: use one of {', '.join(options)}")
        sweeps = [o.input_line for o in overrides if o.is_sweep_override()]
        if sweeps and not multirun:
            raise ConfigError(f"{sweeps[0]} is a sweep but this is a single run; fix: add -m to sweep, or "
                              f"write a list as key=[a,b]")
        line = first_values(overrides)
        try:
            cfg = compose(config_name, overrides=line, return_hydra_config=True)
        except (HydraException, ValueError) as e:  # Hydra raises a bare ValueError for some group values
            raise ConfigError(_explain(e, overrides, compose, config_name)) from e
    check_objective(cfg)  # a study whose every trial would score as failed: one line before any runs
    from omegaconf.errors import OmegaConfBaseException
    for key in ("runs_dir", "cache_dir"):  # Hydra makes the run folder before any check of ours would run
        try:
            path = str(cfg[key])
        except OmegaConfBaseException:  # e.g. ${hydra:runtime.cwd}: resolvable only inside the run
            continue
        writable_dir(path, key)
    from unlearn_bench.run.rundir import check_name, take_overwrite
    take_overwrite(cfg)  # overwrite=maybe: one line before Hydra starts
    # a Slurm request no partition can run: one line before any job is checked
    if multirun and "hydra" in cfg:
        from hydra_plugins.unlearn_bench_launchers.slurm_request import check_launcher
        warning = check_launcher(cfg.hydra.launcher)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    names = [v for o in overrides if o.key_or_group == "name"
             for v in (o.sweep_string_iterator() if o.is_sweep_override() else [o.value()])]
    try:
        for name in names or [cfg.name]:  # every swept name, else the composed one (an experiment's)
            check_name(cfg.runs_dir, name)
    except OmegaConfBaseException:
        pass


def writable_dir(path: str, key: str) -> None:
    """``ConfigError`` unless ``path`` is, or can be made as, a folder this process may write to."""
    import os
    p = Path(path).expanduser().absolute()
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    where = "UNLEARN_BENCH_CACHE or cache_dir" if key == "cache_dir" else key
    if not probe.is_dir():
        raise ConfigError(f"{key}={path} cannot be a folder: {probe} is a file; fix: point {where} at a "
                          f"folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={path} is not writable ({probe} is read-only for this user); fix: point "
                          f"{where} at a writable folder")


def _has_key(compose, config_name: str, choice: str, key: str) -> bool:
    try:
        return OmegaConf.select(compose(config_name, overrides=[choice]), key, default=None) is not None
    except Exception:  # noqa: BLE001 -- an option that does not compose has no keys
        return False


def _explain(e: Exception, overrides, compose, config_name: str) -> str:
    """One line for a composition error; a misspelled key gets the closest valid key."""
    text = str(e)
    for o in overrides:
        key = o.key_or_group
        if text.startswith(f"Could not override '{key}'"):
            group = key.split(".", 1)[0]
            swept = next((x for x in overrides if x.key_or_group == group and x.is_sweep_override()), None)
            options = list(swept.sweep_string_iterator()) if swept is not None else []
            if any(_has_key(compose, config_name, f"{group}={v}", key) for v in options[1:]):
                # e.g. -m method=none,finetune method.lr=0.1: finetune has lr, none has not
                return (f"{key} is not a setting of {group}={options[0]}, one of the swept {group}s; fix: "
                        f"sweep only {group}s that have {key.split('.', 1)[1]}, or run the others without it")
            groups = [x.input_line for x in overrides
                      if "/" not in x.key_or_group and "." not in x.key_or_group
                      and not x.is_sweep_override() and x is not o]
            try:
                known = _keys(compose(config_name, overrides=groups, return_hydra_config=True))
            except Exception:
                known = _keys(compose(config_name, overrides=[], return_hydra_config=True))
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}=...? To add a new key write +{key}=..." if close else \
                f"to add a new key write +{key}=..."
            return f"unknown config key '{key}'; fix: {hint}"
        if text.startswith("Could not append to config") and f"'{key}'" in text:
            return f"+{key} adds a key that already exists; fix: write {key}=... to change it"
    return f"the command line does not compose ({one_line(text, 200)}); fix: correct that override"
