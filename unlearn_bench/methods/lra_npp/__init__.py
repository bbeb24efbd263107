"""LRA-NPP: zero-shot class unlearning by layer-wise relevance analysis and neuronal path perturbation
(W. Chang et al., "Zero-shot Class Unlearning via Layer-wise Relevance Analysis and Neuronal Path
Perturbation", arXiv 2410.23693), run the way the authors' public code runs it:

1. draw N unseen forget-class images (seeded by the run seed); one batched LRP pass (epsilon rule, eps 0.1,
   BatchNorm folded on a copy) seeded at the predicted class gives relevance R (N, units) at the input of
   the classifier; for the epsilon rule R_i = a_i w_{c,i} / (z_c + eps sign(z_c));
2. per image, the K units of largest signed R; count occurrences over the N lists; keep the H most frequent;
3. edit the weights on those units' paths (``paths``): zero them (default) or add Gaussian /
   Laplace noise (the paper's GN / LN baselines). No training data, no fine-tuning.

Beyond the authors (each off by default): ``layers`` (analyse/perturb other Linear or Conv2d layers,
conv units = channels), ``h: auto`` (the smallest H that drives the forget-class predicted share on a
calibration half of the unseen pool to ``auto_target``), ``contrastive`` (rank by forget occurrence minus
occurrence on unseen images of the other classes), ``relevance: closed_form`` (the epsilon rule's closed
form at the classifier: the same relevance from one forward pass, no backward).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from torch import nn

from unlearn_bench.data.batches import Subset
from unlearn_bench.errors import ConfigError
from unlearn_bench.methods.base import Method, Regime, UnlearnData
from unlearn_bench.methods.hparams import Bool, Choice, Float, Int, List
from unlearn_bench.methods.lra_npp.paths import (
    OPS,
    PATHS,
    UnitLayer,
    merge_masks,
    path_masks,
    perturb,
    resolve_layers,
    resolve_path,
)
from unlearn_bench.methods.lra_npp.relevance import (
    RULES,
    canonize_copy,
    epsilon_closed_form,
    layer_relevance,
    select_units,
    topk_first_seen,
    topk_occurrence,
)

log = logging.getLogger("unlearn_bench")
TARGETS = ("predicted", "label")
BACKENDS = ("zennit", "closed_form")


def pool_halves(pool: Subset, seed: int) -> tuple[Subset, Subset]:
    """Seeded split of the unseen pool into an analysis half and a calibration half (for ``h: auto``)."""
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(len(pool), generator=g).to(pool.x.device)
    half = (len(pool) + 1) // 2

    def part(idx):
        return Subset(pool.x[idx], pool.y[idx], pool.normalize, pool.augment, pool.channels_last)
    return part(perm[:half]), part(perm[half:])


@torch.no_grad()
def forget_share(model: nn.Module, x: torch.Tensor, forget_classes: list[int]) -> float:
    """Share of ``x`` the model predicts as any forget class."""
    model.eval()
    pred = model(x).argmax(1)
    return torch.isin(pred, torch.as_tensor(forget_classes, device=pred.device)).double().mean().item()


class LRANPP(Method):
    """LRA-NPP (Chang et al. 2024). Defaults (``conf/method/lra_npp.yaml``) are the authors' MNIST-CNN
    values: K = 50, H = 80 of 512 units (K, H scale with the layer width when left null), N = 36."""

    regime = Regime.ZERO_SHOT
    # k, h null: the fractions of the analysed layer's width; h auto: searched on the calibration half
    hparams = {"h_fraction": Float(gt=0, le=1).tune(0.01, 0.6, log=True),
               "k_fraction": Float(gt=0, le=1).tune(0.01, 0.3, log=True),
               "rule": Choice(*RULES).tune("epsilon", "gamma", "alpha1_beta0"),
               "k": Int(ge=1, null=True), "h": Int(ge=1, null=True, also=("auto",)), "n": Int(ge=1),
               "epsilon": Float(ge=0), "gamma": Float(ge=0), "target": Choice(*TARGETS),
               "path": Choice(*PATHS), "op": Choice(*OPS), "noise_scale": Float(ge=0),
               "layers": List(of=str, null=True),
               "auto_target": Float(ge=0, lt=1, null=True), "contrastive": Bool(), "canonize": Bool(),
               "relevance": Choice(*BACKENDS), "maps": Int(ge=0)}
    search_note = "H and K as fractions of the analysed layer's width, and the LRP rule."

    def __init__(self, k: int | None = None, h: int | str | None = None, n: int = 36,
                 k_fraction: float = 50 / 512, h_fraction: float = 80 / 512, rule: str = "epsilon",
                 epsilon: float = 0.1, gamma: float = 0.25, target: str = "predicted", path: str = "auto",
                 op: str = "zero", noise_scale: float = 1.0, layers: list[str] | None = None,
                 auto_target: float | None = None, contrastive: bool = False, canonize: bool = True,
                 relevance: str = "zennit", maps: int = 4):
        super().__init__()
        self.k, self.h, self.n = k, h, int(n)
        self.k_fraction, self.h_fraction = float(k_fraction), float(h_fraction)
        self.rule, self.epsilon, self.gamma, self.target = rule, float(epsilon), float(gamma), target
        self.path, self.op, self.noise_scale = path, op, float(noise_scale)
        self.layers = list(layers) if layers else None
        self.auto_target, self.contrastive = auto_target, bool(contrastive)
        self.canonize, self.relevance, self.maps = bool(canonize), relevance, int(maps)
        self.needs_unseen_retain = self.contrastive
        self.report: dict = {}

    # -- sizes -------------------------------------------------------------------------------------------
    def k_for(self, width: int) -> int:
        return int(self.k) if self.k is not None else max(1, round(self.k_fraction * width))

    def h_for(self, width: int) -> int:
        return int(self.h) if self.h not in (None, "auto") else max(1, round(self.h_fraction * width))

    @property
    def auto(self) -> bool:
        return self.h == "auto"

    def validate(self, model: nn.Module, info: dict) -> None:
        def check(ok, msg):
            if not ok:
                raise ConfigError(msg)
        specs = resolve_layers(model, self.layers)
        one_classifier = len(specs) == 1 and specs[0].is_classifier
        check(self.relevance == "zennit" or (self.rule == "epsilon" and one_classifier),
              "lra_npp relevance=closed_form exists only for rule=epsilon at the classifier alone; "
              "fix: set method.relevance=zennit")
        for s in specs:
            h = None if self.auto else self.h_for(s.width)
            for name, value in (("k", self.k_for(s.width)), ("h", h)):
                check(value is None or 1 <= value <= s.width,
                      f"lra_npp {name}={value} is outside 1..{s.width} (units at the input of {s.consumer}); "
                      f"fix: set method.{name}<={s.width}")
            if s.is_classifier and resolve_path(model, self.path) == "incoming_and_target_out":
                check(s.producer is not None,
                      f"lra_npp path incoming_and_target_out needs model.feature_source, which "
                      f"{type(model).__name__} lacks; fix: set method.path=auto")
        pool = int(info["unseen_size"])
        limit = (pool + 1) // 2 if self.auto else pool
        where = "the analysis half of the unseen pool" if self.auto else "the unseen pool"
        check(1 <= self.n <= limit, f"lra_npp n={self.n} is outside 1..{limit} ({where} has {limit} images); "
                                    f"fix: set method.n<={limit} or enlarge forget.unseen.per_class")

    # -- analysis ----------------------------------------------------------------------------------------
    def _relevance(self, net: nn.Module, subset: Subset, specs: list[UnitLayer]) -> dict[str, torch.Tensor]:
        x, y = subset.tensors()
        target = "predicted" if self.target == "predicted" else y
        if self.relevance == "closed_form":  # the epsilon rule at the last Linear: one forward, no backward
            return {specs[0].consumer: epsilon_closed_form(net, x, target, epsilon=self.epsilon)[0]}
        rel, _ = layer_relevance(net, x, [s.consumer for s in specs], target, self.rule, self.epsilon,
                                 self.gamma)
        return rel

    def _scores(self, net, analysis: Subset, data: UnlearnData, specs) -> tuple[dict, dict, dict]:
        """Per layer: ranking scores (occurrence counts, or the contrastive difference), raw counts, and
        where each unit first appears in the analysis pool's top-K lists (ties between scores go to it)."""
        rel = self._relevance(net, analysis, specs)
        counts = {s.consumer: topk_occurrence(rel[s.consumer], self.k_for(s.width)).cpu() for s in specs}
        first = {s.consumer: topk_first_seen(rel[s.consumer], self.k_for(s.width)) for s in specs}
        if not self.contrastive:
            return {k: v.double() for k, v in counts.items()}, counts, first
        other = data.unseen_retain.sample(self.n, int(data.seed))
        rel_o = self._relevance(net, other, specs)
        scores = {}
        for s in specs:
            c_o = topk_occurrence(rel_o[s.consumer], self.k_for(s.width)).cpu()
            # occurrence rates, so the two pools may differ in size
            scores[s.consumer] = counts[s.consumer].double() / len(analysis) - c_o.double() / len(other)
        return scores, counts, first

    def _masks(self, model, specs, ranked: dict, h_first: int, forget) -> dict:
        w0 = specs[0].width
        per = [min(s.width, max(1, math.ceil(h_first * s.width / w0))) for s in specs]
        return merge_masks([path_masks(model, s, ranked[s.consumer][:hs], self.path, forget)
                            for s, hs in zip(specs, per)]), per

    def _search_h(self, model, specs, ranked, calib: Subset, data: UnlearnData) -> tuple[int, dict]:
        """Smallest H (for the first layer; others scale with width) meeting ``auto_target``: binary search
        over the ranked units, assuming the share falls as H grows; edits are undone between trials."""
        goal = 1.0 / data.num_classes if self.auto_target is None else float(self.auto_target)
        x, _ = calib.tensors()
        full, _ = self._masks(model, specs, ranked, specs[0].width, data.forget_classes)
        params = dict(model.named_parameters())
        saved = {k: params[k].detach().clone() for k in full}
        trials: list[tuple[int, float]] = []

        def share(h):
            masks, _ = self._masks(model, specs, ranked, h, data.forget_classes)
            perturb(model, masks, self.op, self.noise_scale, data.seed)
            s = forget_share(model, x, data.forget_classes)
            with torch.no_grad():
                for k, v in saved.items():
                    params[k].copy_(v)
            trials.append((h, s))
            return s

        lo, hi = 1, specs[0].width
        met = share(hi) <= goal
        while met and lo < hi:
            mid = (lo + hi) // 2
            if share(mid) <= goal:
                hi = mid
            else:
                lo = mid + 1
        chosen = hi
        final = next(s for h, s in reversed(trials) if h == chosen)
        if not met:
            log.warning("lra_npp h=auto: even all %d units leave a forget share of %.3f > %.3f; using all",
                        hi, final, goal)
        return chosen, {"target": goal, "share": final, "met": bool(final <= goal),
                        "calibration_size": len(calib),
                        "trials": trials}

    # -- the method ----------------------------------------------------------------------------------------
    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        t0 = time.perf_counter()
        specs = resolve_layers(model, self.layers)
        pool = data.unseen
        analysis, calib = pool_halves(pool, data.seed) if self.auto else (pool, None)
        analysis = analysis.sample(self.n, int(data.seed))
        x0 = analysis.tensors()[0][:1]
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        # zennit's hooks leave weights alone, so only BatchNorm folding needs a copy
        use_copy = self.canonize and has_bn and self.relevance == "zennit"
        net = canonize_copy(model, example=x0) if use_copy else model
        scores, counts, first = self._scores(net, analysis, data, specs)
        del net
        ranked = {s.consumer: select_units(scores[s.consumer], s.width, first[s.consumer]) for s in specs}
        auto = None
        if self.auto:
            h_first, auto = self._search_h(model, specs, ranked, calib, data)
        else:
            h_first = self.h_for(specs[0].width)
        analysis_s = time.perf_counter() - t0

        t1 = time.perf_counter()
        masks, per = self._masks(model, specs, ranked, h_first, data.forget_classes)
        edited = perturb(model, masks, self.op, self.noise_scale, data.seed)
        if next(model.parameters()).is_cuda:  # the edit's kernels are asynchronous
            torch.cuda.synchronize()
        edit_s = time.perf_counter() - t1

        self.extra_metrics = {"lra_npp/h": float(sum(per)), "lra_npp/k": float(self.k_for(specs[0].width)),
                              "lra_npp/n": float(len(analysis)), "lra_npp/analysis_s": analysis_s,
                              "lra_npp/edit_s": edit_s, "lra_npp/edited_weights": float(edited)}
        if auto is not None:
            self.extra_metrics["lra_npp/auto_share"] = auto["share"]
        self.report = {
            "paper": "Chang et al. 2024, arXiv 2410.23693", "relevance": self.relevance, "rule": self.rule,
            "epsilon": self.epsilon,
            "target": self.target, "path": resolve_path(model, self.path), "op": self.op, "n": len(analysis),
            "contrastive": self.contrastive, "h_mode": "auto" if self.auto else "fixed", "h_chosen": h_first,
            "auto": auto, "analysis_s": analysis_s, "edit_s": edit_s, "edited_weights": edited,
            "layers": [{"consumer": s.consumer, "producer": s.producer, "width": s.width,
                        "k": self.k_for(s.width),
                        "h": hs, "units": ranked[s.consumer][:hs].tolist(),
                        "unit_counts": counts[s.consumer][ranked[s.consumer][:hs]].tolist(),
                        "counts": counts[s.consumer].tolist(),
                        "scores": scores[s.consumer].tolist()} for s, hs in zip(specs, per)],
        }
        return model

    def write_artifacts(self, run_dir: Path, original: nn.Module, unlearned: nn.Module,
                        data: UnlearnData) -> None:
        from unlearn_bench.methods.lra_npp.report import write_report
        write_report(self, Path(run_dir), original, unlearned, data)
