"""METRIC_INFO's directions and retrain references against what the oracle measures.

`none` and `retrain` run on digits/MLP (and on the Fashion-MNIST default, slow). A collapsed model, one whose
outputs ignore the input (retain accuracy at chance), is scored from the same labels and reference logits.
A metric fails when its stated reference is far from the oracle's value, when "higher"/"lower" ranks the
original above the oracle, or when it ranks a collapsed model above the oracle: then the oracle is not at an
extreme of the metric and the direction must be `closer_to_retrain`.
"""
import os
import re
from pathlib import Path

import numpy as np
import pytest

from unlearn_bench.eval import suite as eval_suite
from unlearn_bench.eval.family import shipped
from unlearn_bench.metrics.info import METRIC_INFO
from unlearn_bench.run import pipeline
from unlearn_bench.run.identity import LEGACY_FAMILIES

FMNIST_DIR = Path(os.environ.get("UNLEARN_BENCH_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
# Not produced by eval=fast runs (they need shadows, N-model ensembles or timing, not an oracle's value)
UNMEASURED = {"mia/ulira_auc", "mia/ulira_bal_acc", "mia/ulira_tpr_at_1fpr", "fq/score",
              "fq/forgetting_quality",
              *(k for k in METRIC_INFO if k.startswith(("klom/", "cost/")))}
REF_TOL = 0.1  # |oracle - stated reference| allowed for a reference stated as a number
SPLITS = ("forget_train", "retain_train", "forget_test", "retain_test", "unseen")


def _run_pair(root: Path, overrides: list[str]) -> tuple[dict, dict, dict]:
    from unlearn_bench.config import compose
    # every family: one that no level lists (e.g. entropy) is checked too
    families = [*LEGACY_FAMILIES, *sorted(set(shipped()) - set(LEGACY_FAMILIES))]
    common = [*overrides, "progress=false", "eval.retrain=true", "eval.relearn=true",
              f"eval.families=[{','.join(families)}]"]
    none = pipeline.run(compose([*common, "method=none"]), root / "none")
    oracle = pipeline.run(compose([*common, "method=retrain"]), root / "retrain")
    with np.load(root / "none" / "predictions.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return none, oracle, arrays


def _collapsed(arrays: dict, draws: int, kind: str) -> dict:
    """Metrics of a model whose logits ignore the input: one retain class always (``constant``) or noise."""
    labels = {s: arrays[f"labels_{s}"] for s in SPLITS if f"labels_{s}" in arrays}
    ref_o = {s: arrays[f"original_logits_{s}"] for s in labels}
    ref_r = {s: arrays[f"retrain_logits_{s}"] for s in labels}
    c = ref_o["forget_train"].shape[1]
    forget = int(labels["forget_train"][0])
    rng = np.random.default_rng(0)
    logits = {}
    for s, y in labels.items():
        z = np.zeros((len(y), c))
        if kind == "constant":
            z[:, (forget + 1) % c] = 1.0
        else:
            z = rng.normal(0.0, 3.0, z.shape)
        logits[s] = z
    m = eval_suite.accuracies(logits, labels)
    m.update(eval_suite.population_mias(logits, labels, ref_o, seed=0, draws=draws))
    mia_r = eval_suite.population_mias(ref_r, labels, ref_o, seed=0, draws=draws)
    m.update(eval_suite.oracle_distances(logits, ref_r, labels, m, mia_r))
    return m


def _numeric_reference(text: str) -> float | None:
    hit = re.match(r"^~?\s*(-?\d+(?:\.\d+)?)(?:\s|$|\()", text)
    return float(hit.group(1)) if hit else None


def _better(direction: str, a: float, b: float, margin: float) -> bool:
    """Whether ``a`` beats ``b`` by more than ``margin`` under ``direction``."""
    return a > b + margin if direction == "higher" else a < b - margin


def _noise(m: dict, key: str, draws: int) -> float:
    """Two standard errors of a mean over ``draws`` attack draws (0 for a metric without draws), and
    rounding."""
    return 2.0 * float(m.get(f"{key}_std") or 0.0) / np.sqrt(draws) + 1e-9


def check_directions(none: dict, oracle: dict, collapsed: dict[str, dict], num_classes: int,
                     keys: list[str] | None = None) -> list[str]:
    """What contradicts METRIC_INFO (every key with a direction, or ``keys``), one line per problem."""
    problems, checked = [], set()
    draws = int(oracle.get("eval/mia_draws", 1))
    for key, info in METRIC_INFO.items():
        if info.direction == "n/a" or key in UNMEASURED or (keys is not None and key not in keys):
            continue
        assert key in oracle and oracle[key] is not None, f"{key}: not measured on the oracle"
        checked.add(key)
        v = float(oracle[key])
        if f"retrain/{key}" in none and key not in ("relearn/steps", "relearn/ain", "relearn/reached"):
            # one oracle, seen from both runs
            assert none[f"retrain/{key}"] == pytest.approx(v, abs=1e-9), key
        ref = _numeric_reference(info.retrain_reference)
        if ref is not None and not np.isnan(v) and abs(v - ref) > REF_TOL:
            problems.append(f"{key}: oracle {v:.3f}, stated reference {info.retrain_reference!r}")
        if "(~ original)" in info.retrain_reference and abs(v - none[key]) > 0.05:
            problems.append(f"{key}: oracle {v:.3f} vs original {none[key]:.3f}, stated '~ original'")
        if key == "acc/test" and abs(v - oracle["acc/retain_test"] * (num_classes - 1) / num_classes) > 0.03:
            problems.append(f"acc/test: oracle {v:.3f} is not retain-class TA x (C-1)/C")
        if info.direction not in ("higher", "lower"):
            continue
        margin = _noise(oracle, key, draws)
        if key in none and _better(info.direction, none[key], v, margin + _noise(none, key, draws) + 0.02):
            problems.append(f"{key} ({info.direction}): the original ({none[key]:.3f}) ranks above the "
                            f"oracle ({v:.3f})")
        for kind, m in collapsed.items():
            if key in m and _better(info.direction, m[key], v, margin + _noise(m, key, draws)):
                problems.append(f"{key} ({info.direction}): a collapsed model ({kind}: {m[key]:.3f}) ranks "
                                f"above the oracle ({v:.3f})")
    if keys is None:  # a new metric is checked here or named in UNMEASURED
        assert {k for k, i in METRIC_INFO.items() if i.direction != "n/a"} - UNMEASURED == checked
    return problems


def _check_pair(none: dict, oracle: dict, arrays: dict, num_classes: int) -> None:
    draws = int(oracle.get("eval/mia_draws") or 1)
    collapsed = {kind: _collapsed(arrays, draws, kind) for kind in ("constant", "noise")}
    for m in collapsed.values():  # the collapse is real: retain accuracy at chance
        assert m["acc/retain_test"] < 1.5 / (num_classes - 1)
    problems = check_directions(none, oracle, collapsed, num_classes)
    assert not problems, "\n".join(problems)


def test_directions_on_digits(tmp_path, cache_dir):
    # 8 epochs: the original and the oracle train in seconds and still separate (retain-test acc > 0.9)
    none, oracle, arrays = _run_pair(tmp_path, ["data=digits", "model=mlp", f"cache_dir={cache_dir}",
                                                "forget.classes=[3]", "train.epochs=8"])
    _check_pair(none, oracle, arrays, 10)


def test_the_check_catches_the_old_statements(monkeypatch):
    """Before measurement the entropy attack read "lower, ~ 0" and Fr "higher, ~ 1"; with the Fashion-MNIST
    default's values both are flagged, and the statements now in METRIC_INFO are not."""
    none = {"mia/entropy_member_rate": 0.60, "mia/fr": 0.15, "mia/fr_std": 0.01}
    oracle = {"mia/entropy_member_rate": 0.31, "mia/fr": 0.91, "mia/fr_std": 0.01, "acc/retain_test": 0.84}
    collapsed = {"constant": {"mia/entropy_member_rate": 0.0, "mia/fr": 1.0, "mia/fr_std": 0.0}}
    keys = ["mia/entropy_member_rate", "mia/fr"]
    assert check_directions(none, oracle, collapsed, 10, keys) == []
    old = {"mia/entropy_member_rate": ("lower", "compare with Retrain (~ 0)"), "mia/fr": ("higher", "~ 1")}
    for key, (direction, ref) in old.items():
        stated = METRIC_INFO[key]._replace(direction=direction, retrain_reference=ref)
        monkeypatch.setitem(METRIC_INFO, key, stated)
    problems = check_directions(none, oracle, collapsed, 10, keys)
    assert len(problems) == 2 and all("collapsed model" in p for p in problems)
    oracle["mia/fr"] = 0.85  # 0.15 from the stated "~ 1": the reference itself is contradicted too
    assert any("stated reference '~ 1'" in p for p in check_directions(none, oracle, collapsed, 10, keys))
    assert _numeric_reference("0 (by definition)") == 0.0
    assert _numeric_reference("retrain's RA (~ original)") is None


@pytest.mark.slow
@pytest.mark.skipif(not FMNIST_DIR.is_dir(),
                    reason=f"Fashion-MNIST not at {FMNIST_DIR} (dataset-fashion-mnist)")
def test_directions_on_the_fashion_mnist_default(tmp_path, cache_dir):
    none, oracle, arrays = _run_pair(tmp_path, ["experiment=default", f"cache_dir={cache_dir}",
                                                f"data.system_dirs=[{FMNIST_DIR}]", "data.download=false"])
    _check_pair(none, oracle, arrays, 10)
