"""The cost of a block of a run: wall-clock seconds and peak memory (``cost/*`` in metrics.json)."""

from __future__ import annotations

import resource
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class _RssPeak(threading.Thread):
    """Samples the process's resident memory every 5 ms: the CPU stand-in for max_memory_allocated."""

    def __init__(self):
        super().__init__(daemon=True)
        self.start_mb = self.peak_mb = _rss_mb()
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.005):
            self.peak_mb = max(self.peak_mb, _rss_mb())


@contextmanager
def measure(device: str, out: dict, prefix: str):
    """Wall-clock seconds (synchronised on GPU) and peak memory of the enclosed block: on GPU the peak
    allocated by torch; on CPU the peak resident memory *added* during the block (sampled)."""
    cuda = device.startswith("cuda")
    sampler = None
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    elif Path("/proc/self/statm").exists():
        sampler = _RssPeak()
        sampler.start()
    t0 = time.perf_counter()
    yield
    if cuda:
        torch.cuda.synchronize()
    out[f"{prefix}_s"] = time.perf_counter() - t0
    if cuda:
        out["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    elif sampler is not None:
        sampler.done.set()
        sampler.join()
        out["peak_mem_mb"] = max(sampler.peak_mb, _rss_mb()) - sampler.start_mb
