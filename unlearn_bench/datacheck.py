"""``python -m unlearn_bench.datacheck NAME``: exit 0 if dataset NAME (a file in conf/data/) can be
loaded here (locally or by download), else print why and exit 1. Used by ``make run``."""

import sys
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import OmegaConf

from unlearn_bench.errors import DataNotFoundError


def main(name: str, cache_dir: str | None = None) -> int:
    cfg = OmegaConf.load(Path(__file__).resolve().parent.parent / "conf" / "data" / f"{name}.yaml")
    source = instantiate(cfg)
    try:
        if hasattr(source, "resolve"):
            source.resolve(cache_dir)
    except DataNotFoundError as e:
        print(f"{e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    import os
    sys.exit(main(sys.argv[1], os.environ.get("UNLEARN_BENCH_CACHE", str(Path.home() / ".cache/unlearn-bench"))))
