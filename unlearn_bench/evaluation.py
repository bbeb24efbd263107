"""Collecting model outputs: each model runs once per split, in large batches, under inference mode.
Metrics (``unlearn_bench.metrics``) are computed afterwards from these arrays."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from unlearn_bench import metrics as M
from unlearn_bench.methods.base import Subset

SPLITS = ("forget_train", "retain_train", "forget_test", "retain_test", "unseen")


@torch.inference_mode()
def predict_logits(model: nn.Module, subset: Subset, batch_size: int = 4096) -> np.ndarray:
    model.eval()
    x = subset.x
    # fp32 on every device: attacks and the epsilon score read confidences near 1, which bf16 would tie
    out = []
    for i in range(0, len(x), batch_size):
        xb = subset.normalize(x[i:i + batch_size])
        if subset.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        out.append(model(xb).float())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(out).cpu().numpy()


def collect(model: nn.Module, subsets: dict[str, Subset], batch_size: int = 4096) -> dict[str, np.ndarray]:
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
    ``size`` forget-class train images plus ``size`` retain images; the probe is the forget-class test split."""
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
        out["relearn/ain"] = relearn_ain(out["relearn/steps"], out["retrain/relearn/steps"])
    return out
