"""``python -m unlearn_bench.datacheck NAME [--offline] [--root DIR]``: exit 0 if dataset NAME (a file in
conf/data/) can be loaded here (locally or by download; with --offline only from a copy on this machine,
DIR tried first), else print why and exit 1. Used by ``make run`` and the GPU suite's paper stage."""

import sys
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import OmegaConf

from unlearn_bench.errors import DataError, DataNotFoundError


def main(name: str, cache_dir: str | None = None, offline: bool = False, root: str | None = None) -> int:
    cfg = OmegaConf.load(Path(__file__).resolve().parent.parent / "conf" / "data" / f"{name}.yaml")
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


if __name__ == "__main__":
    import argparse
    import os
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("name")
    ap.add_argument("--offline", action="store_true", help="never download: only a copy on this machine counts")
    ap.add_argument("--root", default=None, help="a folder holding the data set's files (data.root)")
    a = ap.parse_args()
    cache = os.environ.get("UNLEARN_BENCH_CACHE", str(Path.home() / ".cache/unlearn-bench"))
    sys.exit(main(a.name, cache, a.offline, a.root))
