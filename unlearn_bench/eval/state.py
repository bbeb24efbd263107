"""What the metric families of one run read: the run's models and logits, and every shared model or
result (the oracle, a random model, the attacks' results, the reference ensembles), built once, on the
first family that asks for it, so a family's place in ``eval.families`` never changes its values."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from unlearn_bench.eval.family import CACHED_ORACLE, ORACLE


class EvalState:
    def __init__(self, ctx, store, run_dir: Path, logger, original, meta_o: dict, unlearned,
                 logits_o: dict, logits_u: dict, labels: dict, needs: dict[str, int]):
        self.ctx, self.store, self.run_dir, self.logger = ctx, store, Path(run_dir), logger
        self.ev = ctx.cfg.eval
        self.seed, self.draws = int(self.ev.seed), int(self.ev.mia_draws)
        self.original, self.meta_o, self.unlearned = original, meta_o, unlearned
        self.logits_o, self.logits_u, self.labels = logits_o, logits_u, labels
        self.needs = needs
        self.scores: dict = {}  # attack name -> (member, non-member) scores, for roc.csv
        self.arrays: dict = {}  # per-example arrays saved beside the logits in predictions.npz
        self.tables: dict = {}  # per_class, roc: the frames the logger gets
        self._memo: dict = {}

    def memo(self, key: str, compute: Callable):
        """``compute()`` the first time ``key`` is asked for, its value afterwards."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def oracle(self):
        """(model, meta, logits) of the retrain oracle when the listed families need it or can use it
        (``family.plan``), else None."""
        def load():
            use = ORACLE in self.needs or (CACHED_ORACLE in self.needs and self.store.oracle_cached())
            if not use:
                return None
            model, meta = self.store.oracle()
            return model, meta, self.store.logits(model, meta)
        return self.memo("oracle", load)

    def oracle_logits(self) -> dict | None:
        oracle = self.oracle()
        return None if oracle is None else oracle[2]

    @property
    def unchanged(self) -> bool:
        """The unlearned model's outputs are the original's (e.g. ``none``): what is cached for the
        original holds for it too."""
        import numpy as np
        return self.memo("unchanged", lambda: all(np.array_equal(self.logits_u[k], self.logits_o[k])
                                                  for k in self.logits_o))

    def references(self):
        """The U-LiRA shadows and the FQ / KLOM ensembles (``ReferenceModels``), trained where not cached."""
        from unlearn_bench.eval.reference_models import ReferenceModels
        return self.memo("references", lambda: ReferenceModels(self.ctx, store=self.store))
