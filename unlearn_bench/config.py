"""The configuration tree: where it lives (``CONFIG_DIR``), the resolvers its run-folder names use
(``ub_join``, ``ub_mseed``, ``ub_params``, registered at import), and composing it outside ``@hydra.main``
(tests, experiments, notebooks). The CLI imports this module; this module imports nothing of the project."""

from __future__ import annotations

from pathlib import Path

from hydra import compose as _compose
from hydra import initialize_config_dir
from omegaconf import DictConfig, OmegaConf


def _config_dir() -> str:
    """The configuration tree: ``unlearn_bench/conf`` in an installed wheel (the build maps the repository's
    ``conf/`` there), else ``conf/`` beside the package in a source checkout or an editable install."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"no conf/config.yaml in {here} or {here.parent}; fix: reinstall unlearn-bench "
                            f"(pip install .), or run it from a checkout of the repository")


CONFIG_DIR = _config_dir()


def _join(classes) -> str:
    iterable = isinstance(classes, (list, tuple)) or hasattr(classes, "__iter__")
    return "-".join(str(c) for c in classes) if iterable else str(classes)


OmegaConf.register_new_resolver("ub_join", _join, replace=True)


def method_seed_tag(seed, method_seed) -> str:
    """The run folder's suffix for a method seed: none when it is the training seed, so folders written
    before ``method_seed`` existed keep their names; else ``-mseed<k>``, so a sweep over method seeds
    writes one folder per run."""
    return "" if str(method_seed) == str(seed) else f"-mseed{method_seed}"


OmegaConf.register_new_resolver("ub_mseed", method_seed_tag, replace=True)


def drawn_params() -> str:
    """``${ub_params:}``, the values a sweeper set for this job, for its folder name: each key of
    ``hydra.sweeper.params`` the job's overrides set, by its last part (``lr=0.00443-epochs=4``; numbers to 3
    significant digits). For Optuna trials ``trial${hydra:job.num}-${ub_params:}``: the job number keeps two
    draws that round alike apart, and launchers submit every job whose folder names its number
    (``hydra_plugins/unlearn_bench_launchers/skip.py``), so nothing is looked up before a trial is drawn."""
    from hydra.core.hydra_config import HydraConfig
    if not HydraConfig.initialized():
        return ""
    hc = HydraConfig.get()
    drawn = {}
    for o in hc.overrides.task:
        key, _, value = str(o).partition("=")
        drawn[key.lstrip("+~")] = value
    return "-".join(f"{k.rsplit('.', 1)[-1]}={_short(drawn[k])}" for k in (hc.sweeper.get("params") or {})
                    if k in drawn)


def _short(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value.replace("/", "_").replace(" ", "_")
    return value if value.lstrip("-").isdigit() else f"{number:.3g}"


OmegaConf.register_new_resolver("ub_params", drawn_params, replace=True)


def first_values(overrides) -> list[str]:
    """The command line with every sweep replaced by its first value (what the first job composes)."""
    out = []
    for o in overrides:
        if o.is_sweep_override():
            try:
                first = next(iter(o.sweep_string_iterator()))
            except Exception:  # glob/interval sweeps need the sweeper: leave them to Hydra
                continue
            out.append(f"{o.get_key_element()}={first}")
        else:
            out.append(o.input_line)
    return out


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


def choices(cfg: DictConfig) -> dict:
    """Config-group choices (e.g. method -> 'finetune'): the labels used everywhere."""
    if "hydra" in cfg:
        return dict(cfg.hydra.runtime.choices)
    from hydra.core.hydra_config import HydraConfig
    return dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}


def plain_config(cfg: DictConfig) -> dict:
    """The resolved run configuration without Hydra's own node."""
    return {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
            for k in cfg if k != "hydra"}
