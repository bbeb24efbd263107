"""``unlearn-bench``: the Hydra entry point around ``pipeline.run``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from unlearn_bench.errors import UnlearnBenchError

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("unlearn_bench")


def _join(classes) -> str:
    return "-".join(str(c) for c in classes) if isinstance(classes, (list, tuple)) or hasattr(classes, "__iter__") \
        else str(classes)


OmegaConf.register_new_resolver("ub_join", _join, replace=True)


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def _app(cfg: DictConfig) -> float | None:
    from unlearn_bench.pipeline import run
    try:
        result = run(cfg)
    except UnlearnBenchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    acc = result.get("acc/forget_train")
    log.info("%s: %s", result.get("method"), {k: round(v, 4) for k, v in result.items()
                                               if k.startswith("acc/") and isinstance(v, float)})
    return acc


def main() -> None:
    _app()


if __name__ == "__main__":
    main()
