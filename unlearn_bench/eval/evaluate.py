"""Every metric of a run beyond its accuracies, from the models and logits the pipeline hands over: population
attacks (cached for the original and the oracle), ZRF, the oracle's distances, relearn time, U-LiRA,
forgetting quality and KLOM (``conf/eval``); writes per_class.csv and roc.csv."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from unlearn_bench import metrics
from unlearn_bench.eval import outputs as evaluation
from unlearn_bench.eval import suite as eval_suite
from unlearn_bench.eval.reference_models import ReferenceModels
from unlearn_bench.run.identity import RANDOM_SEED_OFFSET

log = logging.getLogger("unlearn_bench")


def evaluate(ctx, run_dir: Path, logger, original, meta_o, unlearned, logits_o, logits_u, labels):
    """Every metric family beyond accuracies (eval_suite); writes per_class.csv and roc.csv. Returns the
    metrics and the retrain oracle's logits (for predictions.npz) when the oracle was used."""
    ev, seed, draws = ctx.cfg.eval, int(ctx.cfg.eval.seed), int(ctx.cfg.eval.mia_draws)
    log.info("%s: evaluating (population attacks over %d draws%s)", ctx.method_label, draws,
             "; reference models train where they are not cached" if ctx.labels.get("eval") == "full" else "")
    mia_tag = (f"mia-v{eval_suite.POPULATION_MIA_VERSION}-seed{seed}-draws{draws}"
               f"-o{meta_o['sha256'][:12]}")  # Fr reads logits_o
    mia_o = ctx.cached_metrics(meta_o, mia_tag,
                               lambda: eval_suite.population_mias(logits_o, labels, logits_o, seed, draws))
    same = all(np.array_equal(logits_u[k], logits_o[k]) for k in logits_o)  # e.g. `none`: attacks are identical
    out = dict(mia_o) if same else eval_suite.population_mias(logits_u, labels, logits_o, seed, draws)
    out.update({f"original/{k}": v for k, v in mia_o.items()})
    out["eval/mia_draws"] = draws
    random_model = ctx.build_model(int(ctx.cfg.seed) + RANDOM_SEED_OFFSET).to(ctx.device)
    forget_random = evaluation.predict_logits(random_model, ctx.subsets["forget_train"], ev.batch_size)
    out["zrf"] = metrics.zrf(logits_u["forget_train"], forget_random)
    models = {"original": logits_o, "unlearned": logits_u}

    retrain = logits_r = None
    # eval.retrain=true makes every row carry oracle metrics; otherwise they appear when the oracle is cached
    if ev.retrain or ev.shadows or ev.fq_runs or ctx.retrain_cached():
        retrain, rmeta = ctx.retrain(logger)
        logits_r = models["retrain"] = ctx.logits(retrain, rmeta)
        out["eval/retrain_cache_hit"], out["eval/retrain_train_s"] = rmeta["cache_hit"], rmeta.get("train_s")
        out.update(eval_suite.accuracies(logits_r, labels, prefix="retrain/"))
        mia_r = ctx.cached_metrics(rmeta, mia_tag,
                                   lambda: eval_suite.population_mias(logits_r, labels, logits_o, seed, draws))
        out.update({f"retrain/{k}": v for k, v in mia_r.items()})
        out["retrain/zrf"] = metrics.zrf(logits_r["forget_train"], forget_random)
        out.update(eval_suite.oracle_distances(logits_u, logits_r, labels, out, mia_r))

    if ev.relearn:
        target = float(ev.relearn_target) * metrics.accuracy(logits_o["forget_test"], labels["forget_test"])
        out.update(evaluation.relearn(ctx.subsets, unlearned, retrain, target, int(ev.relearn_size),
                                      float(ev.relearn_lr), int(ev.relearn_max_steps), seed))

    refs = ReferenceModels(ctx, logger)
    ulira, klom_arrays = None, {}
    if ev.shadows:
        out["eval/shadows"] = int(ev.shadows)
        pair = refs.shadows(int(ev.shadows), seed)
        if pair is not None:
            ulira = (refs.phi(unlearned), refs.phi(retrain))
            out.update(eval_suite.ulira_metrics(*ulira, *pair, fix_variance=bool(ev.ulira_fix_variance)))
            ulira = metrics.ulira_scores(np.stack(ulira), *pair, fix_variance=bool(ev.ulira_fix_variance))
    if ev.fq_runs:
        out["eval/fq_runs"] = int(ev.fq_runs)
        fq = refs.fq_ensembles(int(ev.fq_runs), original, retrain)
        if fq is not None:
            out.update(eval_suite.fq_metrics(fq["u"], fq["r"], fq["acc_u"], fq["acc_r"]))
            klom = refs.klom_margins(int(ev.fq_runs), original) if ev.get("klom", True) else None
            if klom is not None:  # per-example KLOM goes to predictions.npz beside the logits
                out.update(eval_suite.klom_metrics(klom, fq["margins_r"], per_example=klom_arrays))

    per_class = eval_suite.per_class(models, labels, ctx.data.num_classes)
    per_class.to_csv(run_dir / "per_class.csv", index=False)
    scores = eval_suite.attack_rocs(logits_u, labels)
    if ulira is not None:  # U-LiRA's likelihood ratio: unlearned target (member) vs retrain target
        scores["ulira"] = (ulira[0], ulira[1])
    roc = eval_suite.strongest_roc(scores)
    roc.to_csv(run_dir / "roc.csv", index=False)
    logger.log_tables(per_class, roc)
    arrays = {f"retrain_logits_{k}": v for k, v in (logits_r or {}).items()}
    arrays.update(klom_arrays)
    return out, arrays
