"""Reference models for eval=full: U-LiRA shadows and the forgetting-quality ensembles.

Everything that does not depend on the method under test (shadow originals, shadow retrains, the N
retrains) is trained through ``ModelCache`` with a spec that omits the method, so a sweep trains each once
and every method reuses it. Only the unlearning of shadows / of the original (the method itself) reruns.

- U-LiRA (Hayes et al. 2024, "Inexact unlearning needs more careful evaluations"): K shadow originals, each
  trained on D_f plus a random half of D_r, unlearned with a fresh instance of the configured method ("in");
  K shadows retrained on the same half of D_r without D_f ("out"). For class forgetting every shadow's forget
  set is the whole class, so each example has K observations per side. The halves give the shadows the
  spread LiRA needs.
- Forgetting quality (Triantafillou et al. 2024): the method run N times from the one original model (seeds
  differ) and N retrains on D_r with different initialisations and batch orders (run 0 is the oracle itself).
- KLOM (Georgiev et al. 2024): the same N retrains against the method applied to N originals (the run's own
  and N - 1 trained like it with other seeds), on D_f, D_r and the test split.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from hydra.utils import instantiate

from unlearn_bench import metrics as M
from unlearn_bench.errors import Diverged
from unlearn_bench.eval import outputs as evaluation
from unlearn_bench.run.identity import FQ_SEED_OFFSET, KLOM_SEED_OFFSET
from unlearn_bench.run.models import ModelStore
from unlearn_bench.train.loop import check_finite

log = logging.getLogger("unlearn_bench")
KLOM_SPLITS = ("forget_train", "retain_train", "forget_test", "retain_test")


class ReferenceModels:
    """The reference sides of eval=full for the run ``ctx`` (a ``run.context.Context``); its models come
    from ``store`` (a ``run.models.ModelStore``; one bound to ``logger`` when not given)."""

    def __init__(self, ctx, logger=None, store: ModelStore | None = None):
        self.ctx = ctx
        self.store = ModelStore(ctx, logger) if store is None else store
        self.forget = ctx.subsets["forget_train"]

    def _unlearn(self, original, retain_idx, oracle_fn, seed: int):
        """A fresh instance of the configured method on a copy of ``original``; None if it diverges.
        ``oracle_fn`` trains (lazily) a retrain *independent* of the reference side: a method that returns
        the oracle (``retrain``) must be compared with other retrains, not with the very same model."""
        ctx = self.ctx
        method = instantiate(ctx.cfg.method)
        data = ctx.unlearn_data(method, ctx.train_subset(retain_idx), lambda: (oracle_fn(), {}), seed)
        torch.manual_seed(seed)
        try:
            model = method.unlearn(copy.deepcopy(original), data)  # data.fit: the run's norm-stats mode
            check_finite(model)
        except Diverged as e:
            log.warning("reference unlearning run diverged (%s); its metric is skipped", e)
            return None
        return model

    def phi(self, model) -> np.ndarray:
        """LiRA's logit-scaled confidence on D_f."""
        logits = evaluation.predict_logits(model, self.forget)
        return M.logit_scaled_confidence(logits, self.forget.y.cpu().numpy())

    def shadows(self, k: int, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(in, out) phi matrices, shape (k, |D_f|)."""
        store = self.store
        ins, outs = [], []
        for i in range(k):
            orig = store.reference("shadow_original", i, half_seed=seed)
            out = store.reference("shadow_retrain", i, half_seed=seed)
            unl = self._unlearn(orig, store.shadow_half(i, seed),
                                lambda i=i: store.reference("shadow_retrain", i, half_seed=seed, twin=True),
                                seed=int(self.ctx.cfg.seed) + i)
            if unl is None:
                return None
            ins.append(self.phi(unl))
            outs.append(self.phi(out))
        return np.stack(ins), np.stack(outs)

    def fq_ensembles(self, n: int, original, retrain) -> dict | None:
        """phi matrices (n, |D_f|) of n unlearning runs and n retrains, their mean RA and TA, and the
        retrains' margins on every split of ``KLOM_SPLITS`` (``margins_r``: split -> (n, split size)) for
        KLOM."""
        ctx, s = self.ctx, self.ctx.split
        subsets = {k: ctx.subsets[k] for k in KLOM_SPLITS}
        labels = {k: v.y.cpu().numpy() for k, v in subsets.items()}
        retain = {k: subsets[k] for k in ("retain_train", "retain_test")}  # all the unlearned side needs
        runs = {"u": [], "r": []}
        margins_r = []
        for i in range(n):
            unl = self._unlearn(original, s.retain_train, self._twin(i),
                                seed=int(ctx.cfg.seed) + FQ_SEED_OFFSET + i)
            if unl is None:
                return None
            ret = retrain if i == 0 else self.store.reference("fq_retrain", i)
            for side, model in (("u", unl), ("r", ret)):
                lg = evaluation.collect(model, subsets if side == "r" else retain, ctx.cfg.eval.batch_size)
                runs[side].append((self.phi(model),
                                   M.accuracy(lg["retain_train"], labels["retain_train"]),
                                   M.accuracy(lg["retain_test"], labels["retain_test"])))
                if side == "r":
                    margins_r.append({k: M.logit_scaled_confidence(lg[k], labels[k]) for k in subsets})
        out = {}
        for side, rows in runs.items():
            out[side] = np.stack([r[0] for r in rows])
            out[f"acc_{side}"] = {"ra": float(np.mean([r[1] for r in rows])),
                                  "ta": float(np.mean([r[2] for r in rows]))}
        out["margins_r"] = {k: np.stack([m[k] for m in margins_r]) for k in subsets}
        return out

    def _twin(self, i: int):
        """Lazily, the i-th retrain independent of the N oracles: what a method that needs the oracle (or
        returns it, like ``retrain``) gets in the i-th reference run, so it is never compared with itself."""
        return lambda: self.store.reference("fq_retrain", i, twin=True)

    def klom_margins(self, n: int, original) -> dict | None:
        """Margins on ``KLOM_SPLITS`` (split -> (n, split size)) of the method applied to n originals: this
        run's and n - 1 trained like it from other initialisations and batch orders (cached, shared by every
        method and forget set). Georgiev et al. unlearn an ensemble of originals, so the unlearned side
        varies as much as the retrained side does; a deterministic method run n times on one original would
        show no spread at all and be penalised for it. None if an unlearning run diverges."""
        ctx, s = self.ctx, self.ctx.split
        subsets = {k: ctx.subsets[k] for k in KLOM_SPLITS}
        labels = {k: v.y.cpu().numpy() for k, v in subsets.items()}
        out = {k: [] for k in KLOM_SPLITS}
        for i in range(n):
            # the retrain row returns the oracle, whatever it is given
            same = i == 0 or ctx.method.needs_oracle
            orig = original if same else self.store.reference("klom_original", i)
            unl = self._unlearn(orig, s.retain_train, self._twin(i),
                                seed=int(ctx.cfg.seed) + KLOM_SEED_OFFSET + i)
            if unl is None:
                return None
            lg = evaluation.collect(unl, subsets, ctx.cfg.eval.batch_size)
            for k in KLOM_SPLITS:
                out[k].append(M.logit_scaled_confidence(lg[k], labels[k]))
        return {k: np.stack(v) for k, v in out.items()}
