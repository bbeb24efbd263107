"""Shared pieces of the benchmarks: arguments, side-by-side timing, synthetic data, the results table.

Every figure is a ratio of runs timed in one process, alternating between the variants, with the median
of the repeats: on a shared machine absolute seconds drift, ratios measured side by side much less.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

# libgomp's default wait policy spins idle threads; on a loaded 2-core machine a spinning thread steals the
# core its partner needs and a 2-thread MLP step runs 10-30x slower. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HEADER = ("| date | benchmark | device | torch | mode | figures |\n"
          "|---|---|---|---|---|---|\n")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="smoke mode: tiny sizes, one repeat")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per variant (median reported)")
    p.add_argument("--results", default=str(RESULTS), help="markdown table the row is appended to")
    p.add_argument("--no-record", action="store_true", help="print only; do not append to the table")
    return p


def pick_device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def describe(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    model = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds). CPU time barely moves when other jobs share the cores,
    so it is the steadier measure of overhead between single-process variants; wall time is what a user
    waits and the only fair one for variants that use worker processes or a GPU."""
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def alternate(variants: dict, device: str, repeats: int, warmup: bool = True,
              cpu: dict | None = None) -> dict[str, list[float]]:
    """Time each variant ``repeats`` times, interleaved (A B C A B C ...), after one untimed warm-up call
    each (kernel selection, allocator, lazy imports) when ``warmup``; the order rotates every repeat. A
    variant is ``run`` or ``(setup, run)``: ``setup()`` (untimed, e.g. a fresh model) returns what
    ``run(state)`` gets. Returns wall seconds per variant; CPU seconds go into ``cpu`` when given."""
    def call(v, timer=None):
        setup, run = v if isinstance(v, tuple) else (lambda: None, lambda _: v())
        state = setup()
        return timer(lambda: run(state), device) if timer else run(state)
    if warmup:
        for v in variants.values():
            call(v)
    out: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    for r in range(repeats):
        # rotate the order: whatever runs right after a variant inherits its aftermath (DataLoader workers
        # exiting, freed memory), so no variant may always follow the same one
        for name in names[r % len(names):] + names[:r % len(names)]:
            wall, cpu_s = call(variants[name], timed)
            out[name].append(wall)
            if cpu is not None:
                cpu.setdefault(name, []).append(cpu_s)
    return out


def med(xs) -> float:
    return statistics.median(xs)


def spread(xs) -> str:
    """median [min-max] over the repeats, for the printed report."""
    return f"{med(xs):.3f} s [{min(xs):.3f}-{max(xs):.3f}], n={len(xs)}"


def synthetic(n: int, shape: tuple[int, ...], classes: int,
              seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images whose class shifts the mean brightness, so a model can learn something."""
    g = torch.Generator().manual_seed(seed)
    # balanced: holdout splits need every class
    y = (torch.arange(n) % classes)[torch.randperm(n, generator=g)]
    base = 40 + 170 * y.float() / max(1, classes - 1)
    x = base.view(-1, *([1] * len(shape))) + 40 * torch.randn(n, *shape, generator=g)
    return x.clamp(0, 255).to(torch.uint8), y


def record(args, bench: str, device: str, figures: dict, note: str = "") -> None:
    """Append one row (date, device, torch version, figures) to the results table."""
    text = "; ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items())
    if note:
        text += f" ({note})"
    print(f"[{bench}] {text}")
    if args.no_record:
        return
    path = Path(args.results)
    if not path.exists() or "| date |" not in path.read_text():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(("\n" if path.exists() and path.stat().st_size else "") + HEADER)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    with path.open("a") as f:
        f.write(f"| {stamp} | {bench} | {describe(device)} | {torch.__version__} | "
                f"{'quick' if args.quick else 'full'} | {text} |\n")


class SyntheticImages:
    """A data node for the pipeline (``_target_: common.SyntheticImages``): CIFAR-10-shaped (or any shape)
    uint8 tensors from ``synthetic``, so end-to-end benchmarks need no download."""

    def __init__(self, name: str = "synthetic", n_train: int = 50000, n_test: int = 10000,
                 shape=(3, 32, 32), num_classes: int = 10, augment: str = "crop_flip",
                 mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), unseen_per_class: int = 100,
                 train_limit: int | None = None):
        self.name, self.n_train, self.n_test, self.shape = name, int(n_train), int(n_test), tuple(shape)
        self.num_classes, self.augment = int(num_classes), augment
        self.mean, self.std = tuple(mean), tuple(std)

    def load(self, cache_dir=None):
        from unlearn_bench.data import ImageData
        xtr, ytr = synthetic(self.n_train, self.shape, self.num_classes, seed=1)
        xte, yte = synthetic(self.n_test, self.shape, self.num_classes, seed=2)
        return ImageData(self.name, xtr, ytr, xte, yte, self.num_classes, self.mean, self.std, self.augment)


def pipeline_config(method: str, scale: float, cache_dir: str, runs_dir: str, device: str, epochs: int | None,
                    extra=()):
    """The CIFAR-10 x ResNet-18 configuration (its recipe from conf/data_model) with the data node
    swapped for ``SyntheticImages`` at ``scale`` x CIFAR-10's sizes (never fewer than 4 unseen images per
    class, and 30 times that many training images)."""
    from omegaconf import OmegaConf

    from unlearn_bench.config import compose
    per_class = max(4, int(100 * scale))
    over = ["data=cifar10", "model=resnet18", f"method={method}", "eval=fast", "progress=false",
            "logger=none", f"cache_dir={cache_dir}", f"runs_dir={runs_dir}", f"device={device}",
            f"data.unseen_per_class={per_class}", *( [f"train.epochs={epochs}"] if epochs else []), *extra]
    cfg = compose(over)
    OmegaConf.set_struct(cfg, False)
    cfg.data = OmegaConf.create({"_target_": "common.SyntheticImages", "name": "cifar10_synthetic",
                                 "n_train": max(30 * per_class, int(50000 * scale)),
                                 "n_test": max(50, int(10000 * scale)), "unseen_per_class": per_class})
    return cfg
