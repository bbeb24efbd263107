# The two commands of the README: `make run` and `make test`. Both build the environment when missing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell md5sum pyproject.toml 2>/dev/null | cut -c1-8)
RUNS ?= runs
export UNLEARN_BENCH_CACHE ?= $(HOME)/.cache/unlearn-bench

.PHONY: install run test test-slow test-cluster bench figures lint clean

# Each step says what it does and about how long it takes (a 2-core CPU with a fast package mirror);
# pip's own output is kept to warnings and errors (the package's own install: its log, on failure only).
$(STAMP): pyproject.toml
	@test -x $(PY) || { echo "[1/3] creating $(VENV)"; python3 -m venv $(VENV); }
	@echo "[2/3] installing torch 2.14.1 + torchvision 0.29.1 into $(VENV) (about 1-2 min; ~2.5 GB)"
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	@echo "[3/3] installing unlearn-bench and its dependencies (Hydra, Lightning, zennit, ...; about 1 min)"
	@$(PY) -m pip install -q -e '.[dev]' > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }  # its log only when it fails
	@rm -f $(VENV)/.installed-*; touch $(STAMP)
	@echo "installed: $(VENV) ($$($(PY) -c 'import torch; print("torch", torch.__version__)'))"

install: $(STAMP)

# The main job: Fashion-MNIST (Debian package dataset-fashion-mnist when possible, else torchvision's
# download, else a fall-back to digits), the paper's CNN, forget class 0, every default method, one seed.
# digits holds out at most 65 unseen images per class: its own default pool replaces the experiment's 80
DIGITS_FALLBACK := data=digits forget.unseen.per_class=40
# Methods whose rows also get method seeds 1 and 2 (the spread of the method's own draws: LRA-NPP's unseen
# images), cheap enough for the cold-cache budget of about five minutes on a 2-core CPU
SPREAD_METHODS ?= lra_npp
run: $(STAMP)
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || true; fi
	@if $(PY) -m unlearn_bench.data.check fashion_mnist; then data="data=fashion_mnist"; else \
	  echo "Fashion-MNIST is not available (see above); falling back to the bundled digits dataset"; \
	  data="$(DIGITS_FALLBACK)"; fi; \
	$(VENV)/bin/unlearn-bench -m experiment=default $$data runs_dir=$(RUNS) && \
	$(VENV)/bin/unlearn-bench -m experiment=default $$data runs_dir=$(RUNS) method=$(SPREAD_METHODS) method_seed=1,2 && \
	$(VENV)/bin/unlearn-bench-report $(RUNS)/default --out $(RUNS)/default/results

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# Real schedulers on this machine, started and stopped by the tests in network namespaces of their own
# (root, for `unshare -n`): a Ray head and a one-node Slurm cluster (Debian's slurmctld, slurmd, munge,
# installed here when missing; config in deploy/slurm/).
test-cluster: $(STAMP)
	@if ! command -v slurmctld >/dev/null && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -q slurmctld slurmd munge slurm-client >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null && apt-get install -y -q slurmctld slurmd munge slurm-client >/dev/null); fi
	@echo "installing ray for the cluster tier (about 1 min)"; $(PY) -m pip install -q -e '.[ray]' > $(VENV)/install-ray.log 2>&1 || { cat $(VENV)/install-ray.log; exit 1; }
	$(PY) -m pytest -q -m cluster

# Each benchmark prints side-by-side ratios and appends a row to benchmarks/RESULTS.md; BENCH_ARGS=--quick smokes.
bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b $(BENCH_ARGS) || exit 1; done

# Every experiments/*/analyze.py over $(RUNS)/<name>, into the git-ignored experiments/<name>/results/; one
# line per script (rebuilt, or the runs folder it needs); fails when none was rebuilt
figures: $(STAMP)
	@UNLEARN_BENCH_RUNS=$(RUNS) $(PY) experiments/build_figures.py

lint: $(STAMP)
	$(VENV)/bin/ruff check unlearn_bench baselines tests benchmarks experiments hydra_plugins

clean:
	rm -rf $(RUNS) outputs multirun .pytest_cache
