#!/usr/bin/env bash
# Wheels of unlearn-bench's pure-Python dependencies that CUDA images usually lack (Hydra, OmegaConf, the
# ANTLR runtime Hydra parses overrides with, zennit), for a GPU machine without network access whose image
# already holds torch, torchvision, lightning, numpy, pandas, scikit-learn, scipy, matplotlib, filelock.
# Run it where PyPI is reachable; then on the GPU machine: bash benchmarks/gpu_suite.sh --wheels DIR
#
#   bash benchmarks/wheelhouse.sh DIR
set -euo pipefail
dir=${1:?usage: bash benchmarks/wheelhouse.sh DIR}
py=${PYTHON:-python3}
mkdir -p "$dir"
# the versions `make test` runs with; every one is a py3-none-any wheel (no Python version or platform to match)
"$py" -m pip download -q --no-deps --only-binary=:all: -d "$dir" \
  "hydra-core==1.3.8" "omegaconf==2.3.1" "zennit==0.5.1"
# PyPI has only a source distribution of the ANTLR runtime that Hydra 1.3 needs: build its wheel here
"$py" -m pip wheel -q --no-deps -w "$dir" "antlr4-python3-runtime==4.9.3"
ls -1 "$dir"
