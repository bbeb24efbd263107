"""The checkpoint cache: the same run twice. The first run trains the original model; an identical second
run in a fresh run directory loads it from the cache (``original_cache_hit``); a third call on the
finished run directory returns its metrics.json untouched. Prints second/first and third/first.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import common


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=None, help="share of CIFAR-10's sizes (CPU default 0.002)")
    p.add_argument("--epochs", type=int, default=None, help="original epochs (CPU default 1)")
    args = p.parse_args()
    device = common.pick_device(args.device)
    cuda = device.startswith("cuda")
    scale = args.scale or (0.001 if args.quick else 1.0 if cuda else 0.002)
    epochs = args.epochs or (None if cuda and not args.quick else 1)

    from unlearn_bench.run import pipeline
    work = Path(tempfile.mkdtemp(prefix="ub-cache-"))

    def once(run_dir: str) -> tuple[float, dict]:
        cfg = common.pipeline_config("none", scale, str(work / "cache"), str(work / "runs"), device, epochs)
        t0 = time.perf_counter()
        r = pipeline.run(cfg, work / "runs" / run_dir)
        return time.perf_counter() - t0, r

    first, r1 = once("first")
    second, r2 = once("second")
    third, _ = once("second")
    assert not r1["original_cache_hit"] and r2["original_cache_hit"], "the second run did not hit the cache"
    print(f"== ResNet-18, synthetic CIFAR-10 shape at scale {scale} ({device}), method none")
    print(f"  first (trains original) {first:.2f} s (training {r1['original_train_s']:.2f} s)")
    print(f"  second (cache hit)      {second:.2f} s  -> {second / first:.3f} of the first")
    print(f"  third (run complete)    {third:.2f} s  -> {third / first:.4f} of the first")
    common.record(args, "bench_cache", device, {"first s": first, "second/first": second / first,
                                                "complete/first": third / first},
                  f"scale {scale}, epochs {epochs or 'recipe'}, method none")


if __name__ == "__main__":
    main()
