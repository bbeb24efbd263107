"""The class-forgetting benchmark end to end: original + retrain + every core method, eval=fast, ResNet-18
on CIFAR-10-shaped synthetic data, one seed, through ``pipeline.run`` with an empty cache. Prints seconds
and the share of each stage (original training, retrain, unlearning per method, evaluation, the rest).

CUDA: full CIFAR-10 sizes, the recipe's epochs and every method's own budget. CPU: ``--scale`` of those sizes,
``--epochs`` 1 and every method's budget keys cut to 1 (``config.minimal_budget``; without the cut, GKT's
3,000 ResNet-18 student steps alone take most of an hour on two cores), so a CPU row checks the wiring and
the shares of the stages, not the GPU target. ``--full-budget`` keeps the methods' budgets on a CPU too.
"""

from __future__ import annotations

import signal
import tempfile
import time
from pathlib import Path

import common

VARIANT_PREFIXES = ("lra_npp_",)  # ablations of a core method, not methods of their own


def core_methods() -> list[str]:
    names = sorted(p.stem for p in (common.ROOT / "conf" / "method").glob("*.yaml"))
    names = [n for n in names if not n.startswith(VARIANT_PREFIXES)]
    first = [n for n in ("none", "retrain") if n in names]  # none trains the original, retrain the oracle
    return first + [n for n in names if n not in first]


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=None, help="share of CIFAR-10's sizes (CPU default 0.002)")
    p.add_argument("--epochs", type=int, default=None, help="original/retrain epochs (CPU default 1)")
    p.add_argument("--methods", default=None, help="comma-separated method labels (default: every core one)")
    p.add_argument("--full-budget", action="store_true", help="keep every method's budget on a CPU too")
    args = p.parse_args()
    device = common.pick_device(args.device)
    cuda = device.startswith("cuda")
    scale = args.scale or (0.001 if args.quick else 1.0 if cuda else 0.002)
    epochs = args.epochs or (None if cuda and not args.quick else 1)
    methods = args.methods.split(",") if args.methods else (
        ["none", "lra_npp"] if args.quick else core_methods())
    per_class = max(4, int(100 * scale))
    extra = {"lra_npp": [f"method.n={min(36, per_class)}"]}
    cut = not cuda and not args.full_budget
    if cut:
        from unlearn_bench.config import minimal_budget
        extra = {m: [*extra.get(m, []), *minimal_budget(m)] for m in methods}

    work = Path(tempfile.mkdtemp(prefix="ub-e2e-"))
    stages = {"original": 0.0, "retrain": 0.0, "unlearn (methods)": 0.0, "eval": 0.0, "other": 0.0}
    rows = []
    t_all = time.perf_counter()
    # a time limit (SIGTERM) or Ctrl-C still leaves a row: the methods done so far, marked partial
    signal.signal(signal.SIGTERM, _time_up)
    signal.signal(signal.SIGINT, _time_up)
    try:
        _loop(methods, scale, epochs, device, work, extra, stages, rows)
        done = len(methods)
    except TimeUp:
        done = len(rows)
        print(f"  stopped after {done} of {len(methods)} methods", flush=True)
    total = time.perf_counter() - t_all
    _report(args, device, scale, epochs, cut, methods, done, stages, rows, total)


class TimeUp(BaseException):
    """Raised by the signal handler: a BaseException, so neither a method's error handling nor Lightning's
    KeyboardInterrupt shutdown (which exits the process) swallows it."""


def _time_up(*_):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not interrupt the report
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise TimeUp()


def _loop(methods, scale, epochs, device, work, extra, stages, rows) -> None:
    for m in methods:
        cfg = common.pipeline_config(m, scale, str(work / "cache"), str(work / "runs"), device, epochs,
                                     extra.get(m, ()))
        t0 = time.perf_counter()
        try:
            from unlearn_bench.run import pipeline
            r = pipeline.run(cfg, work / "runs" / m)
        except Exception as e:  # noqa: BLE001 -- one broken method must not hide the others' figures
            rows.append((m, time.perf_counter() - t0, f"error: {type(e).__name__}: {str(e)[:120]}"))
            continue
        wall = time.perf_counter() - t0
        orig = 0.0 if r.get("original_cache_hit") else float(r.get("original_train_s") or 0.0)
        unl, ev = float(r.get("cost/unlearn_s") or 0.0), float(r.get("cost/eval_s") or 0.0)
        stages["original"] += orig
        stages["retrain" if m == "retrain" else "unlearn (methods)"] += unl
        stages["eval"] += ev
        stages["other"] += max(0.0, wall - orig - unl - ev)
        rows.append((m, wall, f"unlearn {unl:.2f} s, eval {ev:.2f} s, status {r.get('status')}"
                              + (f", original trained {orig:.2f} s" if orig else "")))
        print(f"  {m:16s} {wall:8.2f} s  {rows[-1][2]}", flush=True)  # as it happens: a killed run keeps it


def _report(args, device, scale, epochs, cut, methods, done, stages, rows, total) -> None:
    total = max(total, 1e-9)
    # the rest of the wall time, including a method cut short by the time limit, so the shares sum to 100%
    stages["other"] = max(0.0, total - sum(v for k, v in stages.items() if k != "other"))
    print(f"== ResNet-18, synthetic CIFAR-10 shape at scale {scale} ({device}), epochs "
          f"{epochs or 'recipe'}, {done} of {len(methods)} methods, total {total:.1f} s")
    print("  stage shares:")
    for k, v in stages.items():
        print(f"    {k:18s} {v:8.2f} s  {100 * v / total:5.1f}%")
    failed = [m for m, _, what in rows if what.startswith("error")]
    figures = {"total s": total, **{f"{k} %": 100 * v / total for k, v in stages.items()},
               "methods": len(methods), "failed": ",".join(failed) or "none"}
    if done < len(methods):
        figures["partial"] = f"stopped by the time limit after {done} of {len(methods)} methods"
    common.record(args, "bench_end_to_end", device, figures,
                  f"scale {scale}, epochs {epochs or 'recipe'}, method budgets "
                  f"{'cut to 1' if cut else 'as configured'}, eval=fast, one seed")


if __name__ == "__main__":
    main()
