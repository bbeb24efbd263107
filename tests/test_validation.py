"""Bad configuration: every problem is found before anything trains and reads as one line (problem, then
fix); the CLI prints it as ``error: ...`` and exits 2, leaving no metrics.json."""

import signal
import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException, OverrideParseException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unlearn_bench import cli
from unlearn_bench.config import compose
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.run import models, validate
from unlearn_bench.run.validate import validate_config


@pytest.fixture
def no_training(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("validation trained something")
    monkeypatch.setattr(models, "fit", boom)


def _one_line(e, fragment):
    msg = str(e)
    assert fragment in msg and "\n" not in msg and "fix:" in msg, msg


BAD = [
    (["train.optimizer.lr=-1"], "train.optimizer.lr=-1"),
    (["train.optimizer.lr=abc"], "train.optimizer.lr"),
    (["train.epochs=0"], "train.epochs=0"),
    (["train.epochs=2.5"], "not an integer"),
    (["train.batch_size=-4"], "train.batch_size"),
    (["train.label_smoothing=1.5"], "label_smoothing"),
    (["train.schedule=linear"], "train.schedule"),
    (["eval.batch_size=0"], "eval.batch_size"),
    (["precision=fp16"], "precision="),
    (["channels_last=maybe"], "channels_last="),
    (["seed=-1"], "seed=-1"),
    (["seed=99999999999999999999"], "seed="),
    (["seed=abc"], "seed="),
    (["device=tpu"], "device="),
    (["forget.classes=[12]"], "out of range"),
    (["forget.classes=[-1]"], "out of range"),
    (["forget.classes=[]"], "empty"),
    (["forget.classes=3"], "not a list"),
    (["forget.classes=[a]"], "not a class index"),
    (["forget.classes=[3,3]"], "lists class 3 more than once"),
    (["forget.classes=[0,1,2,3,4,5,6,7,8,9]"], "all 10 classes"),
    (["forget.unseen.per_class=0"], "per_class"),
    (["forget.unseen.per_class=500"], "per_class"),
    (["forget.unseen.source=train"], "forget.unseen.source"),
    (["model=vit_tiny", "model.patch=3"], "does not fit"),
    (["model.hidden=[-5]"], "does not fit"),
    (["data.test_fraction=7"], "data.test_fraction=7 must be in (0, 1)"),
    (["data.train_limit=-1"], "data.train_limit=-1"),
    (["+method.nonsense=1"], "cannot be built"),
    (["method=finetune", "method.lr=-0.1"], "method.lr"),
    (["method=finetune", "method.epochs=0"], "method.epochs"),
    (["method=finetune", "method.batch_size=abc"], "method.batch_size"),
    (["method=scrub", "method.forget_batch_size=-1"], "method.forget_batch_size"),
    (["method=scrub", "method.max_steps=0"], "method.max_steps"),
    (["method=lra_npp", "method.k=100000"], "method.k<="),  # K > width
    (["method=lra_npp", "method.h=100000"], "method.h<="),  # H larger than the layer
    (["method=lra_npp", "method.n=100000"], "method.n<="),  # N larger than the unseen pool
    (["data=mnist", "data.download=false", "data.system_dirs=[]", "cache_dir=/nonexistent/ub"], "not found"),
    (["method=finetune", "method.momentum=abc"], "method.momentum='abc' is not float"),  # typed by __init__
    (["method=lra_npp", "method.k=abc"], "method.k='abc' is not int or null"),
    (["method=jit", "method.copies=2.5"], "method.copies=2.5 is not int"),
    (["eval.relearn=maybe"], "eval.relearn='maybe' is not true or false"),
    (["eval=full", "eval.shadows=1"], "eval.shadows=1"),
    (["eval.fq_runs=2"], "eval.fq_runs=2"),
    (["eval.relearn_target=1.5"], "eval.relearn_target"),
]


@pytest.mark.parametrize("overrides, fragment", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_config_is_one_line_before_training(digits_cfg, no_training, overrides, fragment):
    with pytest.raises(UnlearnBenchError) as e:
        validate_config(digits_cfg(*overrides))
    _one_line(e.value, fragment)


def test_good_config_validates_without_training(digits_cfg, no_training):
    ctx = validate_config(digits_cfg("method=lra_npp", "forget.classes=[2,5]"))
    assert ctx.split.forget_classes == [2, 5] and ctx.data.num_classes == 10


@pytest.mark.parametrize("method", sorted(p.stem for p in
                                          (cli.Path(cli.CONFIG_DIR) / "method").glob("*.yaml")))
def test_every_method_default_passes_the_generic_checks(method):
    validate.check_config(compose(["data=digits", f"method={method}"]))


# -- the CLI ------------------------------------------------------------------------------------------
def _cli(tmp_path, *args):
    flags = [a for a in args if a.startswith("-")]  # Hydra's parser wants flags before overrides
    return subprocess.run([sys.executable, "-m", "unlearn_bench.cli", *flags, f"runs_dir={tmp_path}/runs",
                           f"cache_dir={tmp_path}/c", "progress=false", *(a for a in args if a not in flags)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)


HYDRA_BAD = [  # caught before Hydra starts: no torch import, so a real process each
    (["method=nope"], "method=nope is not an option of group method"),
    (["-m", "method=none,nope"], "method=nope is not an option"),
    (["trian.epochs=3"], "did you mean train.epochs"),
    (["train.optimizer.lrr=1"], "did you mean train.optimizer.lr"),
    (["+seed=3"], "already exists"),
    (["seed=0,1"], "add -m"),
    (["seed=["], "cannot parse"),
    (["-m", "method=none,finetune", "method.lr=0.1"], "method.lr is not a setting of method=none"),
    (["-m", "method=finetune,none", "method.lr=0.1"], "method.lr is not a setting of method=none"),
    (["runs_dir=/dev/null/runs"], "runs_dir=/dev/null/runs cannot be a folder"),  # later overrides win
    (["cache_dir=/dev/null/c"], "point UNLEARN_BENCH_CACHE or cache_dir at a folder"),
]


@pytest.mark.parametrize("args, fragment", HYDRA_BAD, ids=[" ".join(a) for a, _ in HYDRA_BAD])
def test_cli_composition_error_is_one_line(tmp_path, args, fragment):
    r = _cli(tmp_path, *args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and fragment in r.stderr, r.stderr
    assert not (tmp_path / "runs").exists()


CLI_BAD = [b for b in BAD if b[0][0] in ("train.optimizer.lr=-1", "train.epochs=0", "train.batch_size=-4",
                                          "forget.classes=[12]", "forget.classes=[]", "model=vit_tiny",
                                          "data=mnist", "method=lra_npp")]


def test_cli_validation_errors_are_one_line(tmp_path, monkeypatch, capfd):
    """In one process (torch is imported once): the real ``main`` with the real argv handling."""
    results = []
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for i, (overrides, fragment) in enumerate(CLI_BAD):
            argv = ["unlearn-bench", f"runs_dir={tmp_path}/runs{i}", f"cache_dir={tmp_path}/c",
                    "progress=false", "hydra.job_logging.root.level=ERROR", *overrides]
            monkeypatch.setattr(sys, "argv", argv)
            with pytest.raises(SystemExit) as e:
                cli.main()
            err = capfd.readouterr().err
            results.append((e.value.code, err, fragment))
    finally:  # main routes SIGINT / SIGTERM to its own handler: later tests expect Python's
        for s, h in handlers.items():
            signal.signal(s, h)
    for code, err, fragment in results:
        lines = [x for x in err.splitlines() if x.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert not list(tmp_path.rglob("metrics.json"))


def test_cli_real_process_prints_no_traceback(tmp_path):
    r = _cli(tmp_path, "train.epochs=0")
    assert r.returncode == 2 and r.stderr.splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith("error: train.epochs=0") and "Traceback" not in r.stderr
    assert not list(tmp_path.rglob("metrics.json"))


# -- random overrides ---------------------------------------------------------------------------------
KEYS = ["seed", "device", "train.epochs", "train.batch_size", "train.optimizer.lr", "train.label_smoothing",
        "train.schedule", "forget.classes", "forget.unseen.per_class", "forget.unseen.source",
        "eval.batch_size", "precision", "channels_last", "model.hidden", "data.test_fraction", "method",
        "model", "trian.epochs", "method.lr", "method.k"]
VALUES = st.one_of(
    st.integers(-10, 50), st.integers(-(10**30), 10**30), st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from(["abc", "none", "cosine", "holdout", "test", "finetune", "lra_npp", "mlp", "cnn_paper",
                     "[]", "[3]", "[0,9]", "[12]", "[-1]", "[a]", "[64]", "null", "true", "''", "nan",
                     "inf"]),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=4))
def test_random_overrides_validate_or_fail_cleanly(digits_cfg, no_training, pairs):
    overrides = [f"{k}={v}" for k, v in pairs]
    try:  # the CLI's path: preflight (one-line composition errors), compose, validate
        cli.preflight(["data=digits", "model=mlp", *overrides])
        cfg = digits_cfg(*overrides)
        validate_config(cfg)
    except (ConfigCompositionException, OverrideParseException):
        pass  # Hydra's own composition error
    except UnlearnBenchError as e:
        assert "\n" not in str(e) and "fix:" in str(e), str(e)


def test_a_runs_dir_resolvable_only_inside_the_run_passes_the_preflight():
    cli.preflight(["data=digits", "runs_dir=${hydra:runtime.cwd}/runs"])  # no error: Hydra resolves it later


# -- sizes: the unseen pool and LRA-NPP's N against the data, in one message -------------------------------
@pytest.mark.parametrize("n, h", [(1, None), (20, None), (36, None), (1, "auto"), (20, "auto"), (21, "auto")])
def test_the_pool_size_stated_up_front_is_the_one_lra_npp_validates(n, h):
    from unlearn_bench.data.check import largest_n, unseen_needed
    from unlearn_bench.errors import ConfigError
    from unlearn_bench.methods.lra_npp import LRANPP
    from unlearn_bench.models.mlp import mlp
    method, model = LRANPP(n=n, h=h), mlp((1, 8, 8), 10)
    need = unseen_needed(method)
    info = {"num_classes": 10, "forget_classes": [0], "in_shape": (1, 8, 8)}
    method.validate(model, {**info, "unseen_size": need})
    with pytest.raises(ConfigError):
        method.validate(model, {**info, "unseen_size": need - 1})
    assert largest_n(method, need) == n and largest_n(method, need - 1) == n - 1


def test_size_problems_against_hand_worked_counts():
    from unlearn_bench.data.check import size_problems
    from unlearn_bench.methods.lra_npp import LRANPP
    counts = [60, 41, 80]  # the pool may take 20 of every class
    cfg = compose(["data=digits", "forget.classes=[0,2]", "forget.unseen.per_class=10"])
    problems, fixes = size_problems(cfg, LRANPP(n=36), counts)  # two forget classes: 18 of each needed
    assert problems == ["method.n=36 needs a pool of >= 36 unseen images of forget class(es) [0, 2], but "
                        "forget.unseen.per_class=10 holds out 20"]
    assert fixes == ["set method.n<=20", "set forget.unseen.per_class>=18 (these data allow up to 20)"]
    assert size_problems(cfg, LRANPP(n=20), counts) == ([], [])
    cfg = compose(["data=digits", "forget.classes=[1]", "forget.unseen.per_class=25"])
    problems, fixes = size_problems(cfg, LRANPP(n=36), counts)
    assert len(problems) == 2 and problems[0].endswith("and class 1 has 41")
    assert fixes == ["set forget.unseen.per_class=20 and method.n<=20"]  # digits: no images to add
    problems, _ = size_problems(cfg, None, counts)  # a method with no use for the pool: the pool alone
    assert len(problems) == 1 and problems[0].startswith("forget.unseen.per_class=25 needs >= 50 training")


def test_digits_pool_and_n_too_large_are_reported_together(digits_cfg, no_training):
    with pytest.raises(UnlearnBenchError) as e:
        validate_config(digits_cfg("method=lra_npp", "forget.unseen.per_class=500", "method.n=100"))
    _one_line(e.value, "digits holds too few images for these settings (2 problems)")
    assert "fix: set forget.unseen.per_class=65 and method.n<=65" in str(e.value)
