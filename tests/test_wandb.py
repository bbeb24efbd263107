"""logger=wandb offline: the run is read back from its own files on disk (no network, no wandb.Api).

wandb 0.31 writes an offline run as one ``run-<id>.wandb`` file: a ":W&B" header, then leveldb-log framed
records (4-byte crc, 2-byte length, 1-byte type; 32 KiB blocks), each a protobuf ``Record``. Reading it
checks what ``wandb sync`` would upload, not what our code meant to send.
"""

import json
import struct
import time
from pathlib import Path

import pytest

from unlearn_bench.run import pipeline
from unlearn_bench.run.loggers import WandbLogger, scrub

FAKE_KEY = "local-" + "0123456789abcdef" * 2 + "01234567"


def wandb_records(path: Path):
    from wandb.proto import wandb_internal_pb2 as pb
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block tail too short for a record header is zero padding
            pos += block - pos % block
            continue
        _crc, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + n]
        pos += 7 + n
        if kind == 0:
            continue
        buf = chunk if kind in (1, 2) else buf + chunk  # 1 full, 2 first, 3 middle, 4 last
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            yield rec


def read_run(run_file: Path, wait_s: float = 60.0) -> tuple[dict, dict]:
    """(run facts, final summary) of one offline run file. wandb-core finishes writing the file shortly
    after ``run.finish()`` returns, so wait (bounded) for the run's final "exit" record."""
    t0 = time.monotonic()
    while not any(r.WhichOneof("record_type") == "exit" for r in wandb_records(run_file)):
        assert time.monotonic() - t0 < wait_s, f"{run_file} never got its exit record"
        time.sleep(0.5)
    facts, summary = {}, {}
    for rec in wandb_records(run_file):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            facts = {"group": rec.run.run_group, "job_type": rec.run.job_type, "tags": list(rec.run.tags),
                     "name": rec.run.display_name,
                     "config": {item.key for item in rec.run.config.update} - {"_wandb"}}
        elif kind == "summary":
            for item in rec.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return facts, summary


def test_offline_run_holds_the_summary_and_no_secret(digits_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    run_dir = tmp_path / "run"
    # 8 epochs: the same original as tests/test_eval_suite.py, so a session trains it once
    m = pipeline.run(digits_cfg("method=none", "forget.classes=[3]", "train.epochs=8", "logger=wandb",
                                "name=wbtest"), run_dir)
    runs = {p: read_run(p) for p in run_dir.glob("wandb/offline-run-*/run-*.wandb")}
    [run_file] = [p for p, (f, _) in runs.items() if f["job_type"] == "unlearn"]
    # a cache miss trains the original in its own run, job_type train, same group
    assert all(f["job_type"] == "train" and f["group"] == "wbtest"
               for p, (f, _) in runs.items() if p != run_file)
    # named and tagged as the original, whichever method's run trained it
    assert all(f["name"] == "original-digits-mlp-seed0" and f["tags"] == ["original", "digits", "mlp"]
               for p, (f, _) in runs.items() if p != run_file)
    facts, summary = runs[run_file]
    assert facts["group"] == "wbtest" and facts["job_type"] == "unlearn"
    assert facts["tags"] == ["none", "digits", "mlp"]
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk == m
    for k, v in on_disk.items():
        assert k in summary, k
        assert summary[k] == (pytest.approx(v) if isinstance(v, float) else v), k
    assert "mia/svc_confidence" in summary and "acc/forget_train" in summary
    tables = [p.name for p in run_file.parent.glob("files/media/table/*.table.json")]
    # roc_strongest: a wandb line plot
    for prefix in ("per_class_accuracy_", "roc_strongest_table_", "roc_all_"):
        assert any(t.startswith(prefix) for t in tables), (prefix, tables)
    per_class = json.loads(next(run_file.parent.glob("files/media/table/per_class_accuracy_*")).read_text())
    assert len(per_class["data"]) == 10 and "unlearned_test" in per_class["columns"]
    for p in run_dir.rglob("*"):  # nothing under the run dir (wandb's own files included) holds the key
        if p.is_file():
            assert FAKE_KEY.encode() not in p.read_bytes(), p


def test_training_jobs_get_their_own_train_runs_named_by_the_model_they_train(tmp_path):
    """The original and the oracle are shared by every method of their setup: their runs are named and tagged
    by what they train, not by the method whose run happened to train them, and carry no method config."""
    logger = WandbLogger(mode="offline")
    config = {"seed": 0, "method": {"lr": 0.1}, "method_seed": 0, "wandb": {"api_key": "x"}}
    logger.start(tmp_path, config, "finetune-forget3-seed0", "grp", ["finetune", "digits", "", "mlp"],
                 task={"data": "digits", "model": "mlp", "forget": "3", "seed": 0})
    try:
        assert logger.lightning("train") is not False  # the original model
        assert logger.lightning("retrain") is not False
        assert logger.lightning("shadow_original") is not False
        assert logger.lightning("shadow_original") is not False  # a second shadow of the same kind
        logger.lightning("unlearn").log_metrics({"loss": 1.0}, step=0)
    finally:
        logger.finish()
    runs = sorted(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))
    facts = {f["name"]: f for f in (read_run(p)[0] for p in runs)}
    assert sorted(facts) == ["finetune-forget3-seed0", "original-digits-mlp-seed0",
                             "retrain-digits-mlp-forget3-seed0", "shadow_original-digits-mlp-forget3-seed0",
                             "shadow_original-digits-mlp-forget3-seed0-2"]
    assert all(f["group"] == "grp" for f in facts.values())
    unlearn = facts.pop("finetune-forget3-seed0")
    assert unlearn["job_type"] == "unlearn" and unlearn["tags"] == ["finetune", "digits", "mlp"]
    assert unlearn["config"] == {"seed", "method", "method_seed", "wandb"}
    for name, f in facts.items():
        assert f["job_type"] == "train" and f["tags"] == [name.split("-")[0], "digits", "mlp"], name
        assert f["config"] == {"seed", "wandb"}, name  # no method settings
    assert logger.run is None and not logger._train_runs


def test_scrub_drops_credential_like_entries():
    cfg = {"a": 1, "api_key": "s", "logger": {"WANDB_TOKEN": "t", "mode": "offline"}, "l": [{"password": 1}]}
    assert scrub(cfg) == {"a": 1, "logger": {"mode": "offline"}, "l": [{}]}
