"""The Slurm launcher's checks, against fake ``sinfo`` / ``sbatch`` executables on PATH that print what
Slurm 22.05 prints (tests/fake_slurm.py): a request no partition can run is one line before anything is
submitted (or passes when sinfo cannot answer); sbatch's refusal is one line. Waiting for the jobs:
tests/test_slurm_jobs.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_slurm import SINFO, tool

from hydra_plugins.unlearn_bench_launchers.slurm_jobs import refusal_line
from hydra_plugins.unlearn_bench_launchers.slurm_request import check_launcher, gres_gpus, megabytes, minutes
from unlearn_bench.config import compose
from unlearn_bench.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("unlearn-bench"))


def _check(*overrides):
    return check_launcher(compose(["name=t", *overrides]).hydra.launcher)


def _error(*overrides) -> str:
    with pytest.raises(ConfigError) as e:
        _check(*overrides)
    text = str(e.value)
    assert "\n" not in text and "; fix: " in text, text
    return text


def test_slurm_times_sizes_and_gres_read_as_sinfo_prints_them():
    assert minutes("1-00:00:00") == 1440 and minutes("2-12") == 3600 and minutes("1:30:00") == 90
    assert minutes("30:00") == 30 and minutes("45") == 45 and minutes("infinite") is None
    assert megabytes("32GB") == 32 * 1024 and megabytes("4000") == 4000 and megabytes("512M") == 512
    assert megabytes("1T") == 1024 ** 2
    assert gres_gpus("gpu:a100:4(S:0-1),shard:8") == {"a100": 4} and gres_gpus("gpu:2") == {"": 2}
    assert gres_gpus("(null)") == {}
    assert gres_gpus("gpu:a100:2(S:0),gpu:v100:1(S:1)") == {"a100": 2, "v100": 1}


def test_a_partition_sinfo_does_not_list_is_one_line_naming_the_ones_it_does(slurm_bin):
    tool(slurm_bin, "sinfo", SINFO)
    text = _error("hydra/launcher=slurm", "hydra.launcher.partition=gpux")
    assert text == ("partition 'gpux' does not exist (sinfo lists: debug, cpu, gpu, maint); fix: "
                    "hydra.launcher.partition=<one of them>")
    assert "--format=%P|%a|%l|%c|%m|%G|%D" in (slurm_bin / "sinfo.calls").read_text()


def test_a_gpu_asked_of_a_partition_without_gpus_names_the_cpu_preset_and_the_gpu_partition(slurm_bin):
    tool(slurm_bin, "sinfo", SINFO)
    text = _error("hydra/launcher=slurm", "hydra.launcher.partition=cpu")  # the GPU preset on CPU nodes
    assert "hydra.launcher.gpus_per_node asks for a GPU" in text and "partition 'cpu'" in text
    assert "hydra/launcher=slurm_cpu" in text and "<one with GPUs: gpu>" in text
    text = _error("hydra/launcher=slurm_cpu", "hydra.launcher.partition=debug", "hydra.launcher.gres=gpu:1")
    assert text.startswith("hydra.launcher.gres asks for a GPU") and "partition 'debug'" in text
    text = _error("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=16")
    assert "asks for 16 GPUs per node" in text and "at most 8" in text
    gpu = ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"]
    assert "at most 4" in _error(*gpu, "hydra.launcher.gpus_per_node=a100:8")  # typed: only the a100 nodes
    assert _check(*gpu, "hydra.launcher.gpus_per_node=8") is None


def test_more_cpus_memory_or_time_than_the_partition_has_is_one_line_with_the_largest_value(slurm_bin):
    tool(slurm_bin, "sinfo", SINFO)
    base = ["hydra/launcher=slurm_cpu", "hydra.launcher.partition=cpu"]
    text = _error(*base, "hydra.launcher.cpus_per_task=200")
    assert "200 CPUs per node" in text and "at most 128" in text and "cpus_per_task=128 or fewer" in text
    text = _error(*base, "hydra.launcher.cpus_per_task=40", "hydra.launcher.tasks_per_node=4")
    assert "160 CPUs per node" in text  # CPUs per task x tasks per node
    text = _error(*base, "hydra.launcher.mem_gb=600")
    assert "600 GB per node" in text and "at most 500 GB (512000 MB)" in text and "mem_gb=500 or less" in text
    text = _error(*base, "hydra.launcher.mem_gb=null", "hydra.launcher.cpus_per_task=64",
                  "+hydra.launcher.additional_parameters.mem_per_cpu=10G")
    assert text.startswith("hydra.launcher.additional_parameters.mem_per_cpu asks for 640 GB per node")
    text = _error("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=2000")
    assert text.startswith("hydra.launcher.timeout_min=2000 is longer than partition 'gpu' allows (1440 min)")
    assert text.endswith("fix: hydra.launcher.timeout_min=1440 or less")
    # each figure fits some node of cpu, but no node has 100 CPUs and 400 GB together
    text = _error(*base, "hydra.launcher.cpus_per_task=100", "hydra.launcher.mem_gb=400")
    assert text.startswith("no node of partition 'cpu' has 100 CPUs, 400 GB and 0 GPUs together")
    assert _check(*base, "hydra.launcher.cpus_per_task=100", "hydra.launcher.mem_gb=200") is None


def test_the_default_partition_is_checked_when_none_is_given_and_a_down_one_only_warns(slurm_bin):
    tool(slurm_bin, "sinfo", SINFO)
    cpu = ["hydra/launcher=slurm_cpu"]
    text = _error(*cpu, "hydra.launcher.partition=null", "hydra.launcher.timeout_min=120")
    assert "partition 'debug' allows (60 min)" in text  # debug* is the default
    warning = _check(*cpu, "hydra.launcher.partition=maint", "hydra.launcher.timeout_min=20")
    assert warning.startswith("partition 'maint' is down") and "\n" not in warning
    assert _check("hydra/launcher=slurm_cpu", "hydra.launcher.partition='maint,cpu'",
                  "hydra.launcher.timeout_min=20") is None  # cpu is up and can run it
    text = _error("hydra/launcher=slurm", "hydra.launcher.partition='cpu,debug'")
    assert text.startswith("no partition of cpu,debug can run the job (cpu: ")


def test_no_sinfo_or_one_that_cannot_answer_or_the_check_turned_off_passes(slurm_bin, monkeypatch):
    bad = ["hydra/launcher=slurm", "hydra.launcher.partition=nope"]
    tool(slurm_bin, "sinfo", stderr="slurm_load_partitions: Unable to contact slurm controller", status=1)
    assert _check(*bad) is None
    tool(slurm_bin, "sinfo", "garbage without fields\n")
    assert _check(*bad) is None  # output it cannot read
    tool(slurm_bin, "sinfo", SINFO)
    (slurm_bin / "sinfo.calls").unlink()
    assert _check(*bad, "hydra.launcher.sinfo_check=false") is None
    assert not (slurm_bin / "sinfo.calls").exists()  # not even asked
    assert _check("hydra/launcher=ray_cluster") is None and _check("hydra/launcher=slurm_local") is None
    (slurm_bin / "sinfo").unlink()
    monkeypatch.setenv("PATH", str(slurm_bin))
    assert _check(*bad) is None  # no sinfo at all


def test_the_launcher_checks_the_request_before_looking_at_any_run_folder(slurm_bin, monkeypatch, capsys):
    from omegaconf import OmegaConf

    from hydra_plugins.unlearn_bench_launchers import skip
    from hydra_plugins.unlearn_bench_launchers.submitit_launchers import SlurmArrayLauncher

    tool(slurm_bin, "sinfo", SINFO)
    node = compose(["name=t", "hydra/launcher=slurm", "hydra.launcher.partition=cpu"]).hydra.launcher
    params = {k: node[k] for k in node if k not in ("_target_", "submitit_folder", "setup")}
    launcher = SlurmArrayLauncher(submitit_folder="/nonexistent/%j",
                                  **OmegaConf.to_container(OmegaConf.create(params), resolve=True))
    monkeypatch.setattr(skip, "split_finished", lambda *a: pytest.fail("run folders read before the check"))
    with pytest.raises(SystemExit) as e:
        launcher.launch([["seed=0"], ["seed=1"]], 0)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: hydra.launcher.gpus_per_node asks for a GPU")


def test_sbatch_refusals_become_one_line_with_the_setting_to_change():
    said = ("sbatch: error: Memory specification can not be satisfied\n"
            "sbatch: error: Batch job submission failed: Requested node configuration is not available")
    line = refusal_line(said)
    assert "\n" not in line and line.startswith(
        "sbatch refused the submission: Memory specification can not be satisfied; Requested node "
        "configuration is not available")
    assert "fix: a smaller hydra.launcher.mem_gb" in line
    line = refusal_line("sbatch: error: invalid partition specified: nope\n"
                        "sbatch: error: Batch job submission failed: Invalid partition name specified")
    assert line.endswith("fix: hydra.launcher.partition=<a partition sinfo lists>")


def test_a_sweep_that_sbatch_refuses_ends_in_one_line_and_submits_nothing(tmp_path, slurm_bin):
    """Through the CLI: sinfo cannot answer, so sbatch is asked and refuses; exit 2, one line on stderr."""
    said = ("sbatch: error: invalid partition specified: nope\n"
            "sbatch: error: Batch job submission failed: Invalid partition name specified")
    tool(slurm_bin, "sbatch", stderr=said, status=1)
    env = {**os.environ, "PATH": f"{slurm_bin}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
           "UNLEARN_BENCH_SWEEP_CHECK": "0"}  # the jobs' own validation is not what this test is about
    r = subprocess.run([CLI, "-m", "data=digits", "model=mlp", "method=none", "seed=0,1", "name=ref",
                        f"runs_dir={tmp_path / 'runs'}", f"cache_dir={tmp_path / 'cache'}",
                        "hydra/launcher=slurm_cpu", "hydra.launcher.partition=nope"], capture_output=True,
                       text=True, timeout=300, cwd=ROOT, env=env)
    assert r.returncode == 2, r.stderr[-3000:]
    assert r.stderr.strip() == (
        "error: sbatch refused the submission: invalid partition specified: nope; Invalid partition name "
        "specified; nothing was submitted; fix: hydra.launcher.partition=<a partition sinfo lists>"), r.stderr
    assert "0 of 2 runs already finished (skipped); submitting 2" in r.stdout
    assert (slurm_bin / "sbatch.calls").read_text().count("\n") == 1  # one array, tried once
