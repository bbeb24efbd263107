"""LRA-NPP run artifacts: ``lra_npp.json`` (what was selected and edited, and how long each part took),
``lra_npp_occurrence.png`` (sorted occurrence counts with the H cut) and ``lra_npp_relevance_maps.png``
(input relevance for the forget class before and after the edit, Chang et al. 2024's explainability claim)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt
import torch

from unlearn_bench.methods.lra_npp.relevance import input_relevance
from unlearn_bench.run.store import write_json


def write_report(method, run_dir: Path, original, unlearned, data) -> None:
    report = dict(method.report)
    # full per-unit vectors stay in the figure's source, not the json (they can be thousands long)
    report["layers"] = [{k: v for k, v in layer.items() if k != "scores"} for layer in report["layers"]]
    write_json(run_dir / "lra_npp.json", report)
    occurrence_figure(method.report, run_dir / "lra_npp_occurrence.png")
    if method.maps > 0:
        relevance_maps(method, original, unlearned, data, run_dir / "lra_npp_relevance_maps.png")


def occurrence_figure(report: dict, path: Path) -> None:
    layers = report["layers"]
    fig, axes = plt.subplots(1, len(layers), figsize=(5 * len(layers), 3.2), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        values = layer["scores"] if report["contrastive"] else layer["counts"]
        scores = torch.tensor(values, dtype=torch.float64)
        ordered = scores.sort(descending=True).values
        ax.bar(range(len(ordered)), ordered.numpy(), width=1.0, color="tab:blue")
        ax.axvline(layer["h"] - 0.5, color="tab:red", ls="--", label=f"H = {layer['h']}")
        ylabel = ("occurrence rate: forget - others" if report["contrastive"]
                  else f"top-{layer['k']} occurrences")
        ax.set(xlabel=f"units at the input of {layer['consumer']}, ranked", ylabel=ylabel,
               title=f"{layer['consumer']}: N = {report['n']}, K = {layer['k']}, rule {report['rule']}")
        ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def relevance_maps(method, original, unlearned, data, path: Path) -> None:
    """Forget-class relevance (target = the true label) of a few unseen images, before and after."""
    x, y = data.unseen.sample(method.maps, int(data.seed)).tensors()
    if x.dim() != 4:
        return
    kw = {"target": y, "rule": method.rule, "epsilon": method.epsilon, "gamma": method.gamma}
    rows, preds = {}, {}
    for name, model in (("original", original), ("unlearned", unlearned)):
        with torch.no_grad():
            logits = model.eval()(x)
        preds[name] = logits.argmax(1)
        # LRP is linear in its seed: scaling the one-hot map by the forget-class logit shows the evidence in
        # logit units, so a weakened class shows fainter maps instead of renormalised ones
        z = logits.gather(1, y.view(-1, 1)).view(-1, *([1] * (x.dim() - 2)))
        rows[name] = input_relevance(model, x, **kw) * z
    n = len(x)
    fig, axes = plt.subplots(3, n, figsize=(2.2 * n, 6.6), squeeze=False)
    for j in range(n):
        img = x[j].detach().cpu()
        img = img[0] if img.shape[0] == 1 else (img - img.min()) / (img.max() - img.min() + 1e-12)
        axes[0, j].imshow((img if img.dim() == 2 else img.permute(1, 2, 0)).numpy(), cmap="gray")
        axes[0, j].set_title(f"class {int(y[j])}", fontsize=8)
        for i, name in enumerate(("original", "unlearned"), start=1):
            r = rows[name][j].detach().cpu().numpy()
            bound = max(float(rows["original"][j].abs().max()), float(rows["unlearned"][j].abs().max()),
                        1e-12)
            axes[i, j].imshow(r, cmap="bwr", vmin=-bound, vmax=bound)
            axes[i, j].set_title(f"{name}: pred {int(preds[name][j])}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("LRP relevance for the forget class x its logit; one colour scale per column "
                 "(red +, blue -)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
