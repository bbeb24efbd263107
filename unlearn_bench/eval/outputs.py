"""Collecting model outputs: each model runs once per split, in batches, under inference mode.
Metrics (``unlearn_bench.metrics``) are computed afterwards from these arrays.

Batch size and layout follow the device (``eval.batch_size: null``): 4096 images on a GPU; on a CPU, a conv
model runs batches of 64 with its weights in channels_last, so activations stay in cache. Measured on the
2-core CPU (``benchmarks/bench_eval.py``): cnn_paper forward passes over 6,300 images take 2.4x less CPU time
than NCHW batches of 4096, ResNet-18 1.5x less, ViT-tiny (a conv patch embedding) 1.5x less.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from unlearn_bench import metrics as M
from unlearn_bench.data.batches import Subset

SPLITS = ("forget_train", "retain_train", "forget_test", "retain_test", "unseen")
GPU_BATCH, CPU_BATCH = 4096, 64

def eval_batch_size(batch_size: int | None, device: torch.device | str, conv: bool = True) -> int:
    """``eval.batch_size``, or for null the default: ``CPU_BATCH`` for a conv model on a CPU (fully connected
    models run faster in big batches there), else ``GPU_BATCH``."""
    if batch_size is not None:
        return int(batch_size)
    return CPU_BATCH if torch.device(device).type == "cpu" and conv else GPU_BATCH


def _has_conv(model: nn.Module) -> bool:
    return any(p.dim() == 4 for p in model.parameters())


@contextmanager
def cpu_layout(model: nn.Module, x: torch.Tensor):
    """On a CPU, a conv model's weights in channels_last while it runs (the layout the cache-sized CPU
    kernels are fastest in), restored afterwards so training code sees the layout it left. Yields whether
    the inputs should be channels_last too. On a GPU the pipeline already places conv models that way."""
    convert = x.device.type == "cpu" and x.dim() == 4 and _has_conv(model) and not _is_channels_last(model)
    if not convert:
        yield False
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield True
    finally:
        model.to(memory_format=torch.contiguous_format)


def _is_channels_last(model: nn.Module) -> bool:
    return all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4)


def predict_logits(model: nn.Module, subset: Subset, batch_size: int | None = None) -> np.ndarray:
    model.eval()
    x = subset.x
    bs = eval_batch_size(batch_size, x.device, _has_conv(model))
    # fp32 on every device: attacks and the epsilon score read confidences near 1, which bf16 would tie
    out = []
    # the layout change happens outside inference mode: parameters rewritten inside it would become
    # inference tensors, which a later training step (relearn, a method) cannot use
    with cpu_layout(model, x) as cl, torch.inference_mode():
        for i in range(0, max(len(x), 1), bs):  # an empty split still runs once: (0, classes), not (0, 0)
            xb = subset.normalize(x[i:i + bs])
            if subset.channels_last or cl:
                xb = xb.contiguous(memory_format=torch.channels_last)
            out.append(model(xb).float())
    return torch.cat(out).cpu().numpy()


def collect(model: nn.Module, subsets: dict[str, Subset],
            batch_size: int | None = None) -> dict[str, np.ndarray]:
    return {name: predict_logits(model, s, batch_size) for name, s in subsets.items()}


def relearn_steps(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], probe: Subset, target: float,
                  lr: float, max_steps: int) -> tuple[int, bool]:
    """Relearn time of Chundawat et al. (TIFS'23, "Zero-shot machine unlearning"): full-batch Adam steps on
    ``train`` (a small forget sample mixed with as many retain samples, so the model cannot reach the target
    by predicting the forget class everywhere) until accuracy on ``probe`` (held-out forget-class images)
    reaches ``target``. Returns (steps, reached); ``max_steps`` when it never does. The model is copied."""
    import copy

    import torch.nn.functional as F
    m = copy.deepcopy(model)
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    x, y = train
    for step in range(max_steps + 1):
        if M.accuracy(predict_logits(m, probe), probe.y.cpu().numpy()) >= target:
            return step, True
        if step == max_steps:
            break
        m.train()
        with torch.enable_grad():
            loss = F.cross_entropy(m(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return max_steps, False


def relearn(subsets: dict[str, Subset], unlearned: nn.Module, retrain: nn.Module | None, target: float,
            size: int, lr: float, max_steps: int, seed: int) -> dict:
    """``relearn/steps`` of the unlearned model and, with the oracle, its own steps and the anamnesis index
    AIN = steps(theta_u) / steps(theta_r) (Chundawat et al. TIFS'23). Both relearn the same seeded sample:
    ``size`` forget-class train images plus ``size`` retain images; the probe is the forget-class test
    split."""
    from unlearn_bench.metrics import relearn_ain
    probe = subsets["forget_test"]
    if len(probe) == 0:
        return {}
    xf, yf = subsets["forget_train"].sample(size, seed).tensors()
    xr, yr = subsets["retain_train"].sample(size, seed).tensors()
    train = (torch.cat([xf, xr]), torch.cat([yf, yr]))
    out = {}
    for prefix, model in (("", unlearned), ("retrain/", retrain)):
        if model is not None:
            torch.manual_seed(seed)
            steps, reached = relearn_steps(model, train, probe, target, lr, max_steps)
            out.update({f"{prefix}relearn/steps": steps, f"{prefix}relearn/reached": float(reached)})
    if retrain is not None:
        # neither reached the target: both counts are the cap, and their ratio (1) would read as ideal
        both_censored = not (out["relearn/reached"] or out["retrain/relearn/reached"])
        out["relearn/ain"] = (float("nan") if both_censored
                              else relearn_ain(out["relearn/steps"], out["retrain/relearn/steps"]))
    return out
