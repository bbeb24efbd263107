#!/usr/bin/env bash
# Every GPU measurement of unlearn-bench in one go: the CUDA tests (pytest -m gpu), then each benchmark at
# full size (CIFAR-10 / Fashion-MNIST shapes, the recipes' batch sizes and epochs). Each benchmark appends its
# row to the results table; the rows this run added are printed at the end.
#
#   bash benchmarks/gpu_suite.sh [--wheels DIR] [--results FILE] [--logs DIR] [--only STAGES]
#
#   --wheels DIR    install wheels from DIR first, offline, into a private folder (see benchmarks/wheelhouse.sh)
#   --results FILE  the table rows are appended to (default benchmarks/RESULTS.md; with --smoke a scratch file)
#   --logs DIR      also write each stage's full output and a copy of the table there
#   --only STAGES   comma-separated subset of: tests,epoch,lra,eval,cache,e2e,paper (default: all, in that order)
#   --smoke         check the script itself anywhere (CPU too): every benchmark in --quick mode
#
# Every stage has its own time limit (GPU_SUITE_LIMIT_<STAGE> seconds); a stage that fails or runs over is
# reported and the next one runs; the script then exits 1. The end-to-end stage's limit is its target
# (5 min) plus a margin: killed there, it still records the methods it finished, marked partial. With
# --logs, the table is copied there after every stage, so a command cut short keeps the rows it made. The
# environment must already hold torch, torchvision, lightning, pandas, scipy, scikit-learn, matplotlib,
# pillow, filelock and pytest.
#
# Where a GPU machine is held for 15 minutes (start-up included), at most 10 per command, two commands fit:
#   bash benchmarks/gpu_suite.sh --wheels .whl --logs DIR --only tests,epoch,lra,eval   (limits: 450 s)
#   bash benchmarks/gpu_suite.sh --wheels .whl --logs DIR --only e2e                    (limit: 330 s)
# Limits are ceilings: 780 s together (plus up to 30 s of kill grace per stage and the machine's start-up)
# fit 15 minutes only because stages usually finish well inside them. The cache stage (a CPU figure already
# answers it) is for a longer hold. The paper stage (the LRA-NPP authors' CIFAR-10 row, experiment
# paper_tables_cifar10 at one seed, their unseen-from-test protocol and their 10 epochs) needs CIFAR-10 on the
# machine (the cache's data folder, or GPU_SUITE_CIFAR_ROOT=DIR holding torchvision's cifar-10-batches-py)
# and is skipped without it; it needs a 15-minute hold of its own (limit 540 s, not yet measured on a GPU):
#   bash benchmarks/gpu_suite.sh --wheels .whl --logs DIR --only paper
# Its runs, table and README_results.md go to <logs or benchmarks>/paper_tables_cifar10/.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
wheels="" results="" logs="" only="tests,epoch,lra,eval,cache,e2e,paper" quick="" need_cuda=1
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels|--results|--logs|--only)
      if [ $# -lt 2 ]; then echo "error: $1 needs a value; fix: see the usage at the top of $0" >&2; exit 2; fi
      case "$1" in --wheels) wheels=$2 ;; --results) results=$2 ;; --logs) logs=$2 ;; --only) only=$2 ;; esac
      shift 2 ;;
    --smoke) quick="--quick" need_cuda=0; shift ;;
    *) echo "error: unknown argument $1; fix: see the usage at the top of $0" >&2; exit 2 ;;
  esac
done
if [ -z "$results" ]; then  # a smoke check's quick rows are not results: they go to a scratch table
  if [ -n "$quick" ]; then results=$(mktemp "${TMPDIR:-/tmp}/gpu-suite-smoke.XXXXXX.md")
  else results="$root/benchmarks/RESULTS.md"; fi
fi
if [ -n "$wheels" ]; then
  site=${TMPDIR:-/tmp}/unlearn-bench-site
  "$py" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$site" "$wheels"/*.whl || {
    echo "error: could not install the wheels in $wheels; fix: rebuild them with benchmarks/wheelhouse.sh" >&2; exit 2; }
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
export UNLEARN_BENCH_CACHE=${UNLEARN_BENCH_CACHE:-${TMPDIR:-/tmp}/unlearn-bench-gpu-cache}
[ -n "$logs" ] && mkdir -p "$logs"
cd "$root" || exit 2
NEED_CUDA=$need_cuda "$py" - <<'PY' || exit 2
import os, sys
try:
    import filelock, hydra, lightning, matplotlib, pandas, PIL, pytest, scipy, sklearn, torch, torchvision, zennit  # noqa: F401
except ImportError as e:
    sys.exit(f"error: {e}; fix: install the missing package, or pass --wheels DIR (benchmarks/wheelhouse.sh)")
print(sys.executable)
if os.environ["NEED_CUDA"] == "1" and not torch.cuda.is_available():
    sys.exit("error: torch sees no CUDA device; fix: run this on a GPU machine (or --smoke to check the script)")
name = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
print(f"{name} | torch {torch.__version__} | lightning {lightning.__version__} | hydra {hydra.__version__}")
PY
before=$(wc -l < "$results" 2>/dev/null || echo 0)

declare -A script=([epoch]=bench_epoch.py [lra]=bench_lra_npp.py [eval]=bench_eval.py [cache]=bench_cache.py
                   [e2e]=bench_end_to_end.py)
declare -A limit=([tests]=120 [epoch]=210 [lra]=60 [eval]=60 [cache]=120 [e2e]=330 [paper]=540)
# the paper stage: $1 python, $2 output folder, $3 --quick or empty (a CPU smoke check: an MLP, 1 epoch)
paper_row='py=$1 out=$2
"$py" -m unlearn_bench.data.check cifar10 --offline ${GPU_SUITE_CIFAR_ROOT:+--root "$GPU_SUITE_CIFAR_ROOT"} 2>&1 ||
  { echo "paper: skipped, CIFAR-10 is not on this machine (fix: GPU_SUITE_CIFAR_ROOT=DIR)"; exit 0; }
small=(); [ -n "$3" ] && small=(model=mlp train.epochs=1 data.train_limit=2000 data.test_limit=1000 forget.unseen.per_class=40)
"$py" -m unlearn_bench.cli -m experiment=paper_tables_cifar10 seed=42 forget.unseen.source=test \
  method=none,retrain,lra_npp train.epochs=10 data.download=false progress=false runs_dir="$out/runs" \
  ${GPU_SUITE_CIFAR_ROOT:+data.root="$GPU_SUITE_CIFAR_ROOT"} "${small[@]}" &&
  "$py" experiments/paper_tables_cifar10/analyze.py "$out/runs/paper_tables_cifar10" --out "$out"'
stage_cmd() {  # the stage's command as an array (paths with spaces stay whole)
  if [ "$1" = tests ]; then cmd=("$py" -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py)
  elif [ "$1" = paper ]; then cmd=(bash -c "$paper_row" paper "$py" "${logs:-$root/benchmarks}/paper_tables_cifar10" "$quick")
  else cmd=("$py" "benchmarks/${script[$1]}" --results "$results" ${quick:+"$quick"}); fi
}
summary=() failed=0
for stage in ${only//,/ }; do
  if [ -z "${limit[$stage]:-}" ]; then
    echo "error: unknown stage $stage; fix: pick from tests,epoch,lra,eval,cache,e2e,paper" >&2; exit 2; fi
  var="GPU_SUITE_LIMIT_${stage^^}"; secs=${!var:-${limit[$stage]}}
  stage_cmd "$stage"
  echo "== $stage (limit ${secs} s): ${cmd[*]}"
  t0=$(date +%s)
  # -k: a stage that ignores the polite signal is killed 30 s later
  if [ -n "$logs" ]; then timeout -k 30 "$secs" "${cmd[@]}" 2>&1 | tee "$logs/$stage.log"; rc=${PIPESTATUS[0]}
  else timeout -k 30 "$secs" "${cmd[@]}" 2>&1; rc=$?; fi
  took=$(( $(date +%s) - t0 ))
  case $rc in 0) s=ok ;; 124|137) s="over its ${secs} s limit"; failed=1 ;; *) s="failed (exit $rc)"; failed=1 ;; esac
  summary+=("$(printf '%-6s %-24s %5d s' "$stage" "$s" "$took")")
  [ -n "$logs" ] && cp "$results" "$logs/RESULTS.md" 2>/dev/null  # what this command made so far survives a kill
done
echo; echo "== stages"; printf '  %s\n' "${summary[@]}"
echo "== rows added to $results"; tail -n +"$((before + 1))" "$results" 2>/dev/null
[ -n "$logs" ] && cp "$results" "$logs/RESULTS.md"
exit "$failed"  # 1 when any stage failed or ran over: the rows above are then incomplete
