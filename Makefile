# Entry points: `make demo` (the atlas on CPU), `make test`, and one target per benchmark.
# Each creates or reuses its environment; torch 2.13.0 (the CPU wheel) always goes in first.
#
#   make bench-ensemble          ensemble trainer vs a sequential torch loop    (.venv)
#                                (ARGS="--regimes microcosm,compute-bound,transformer,cnn")
#   make bench-ntk               eNTK: lmech vs per-sample loop and vmap(jacrev) (.venv)
#   make bench-functional-ensemble  functional ensemble (when the script exists) (.venv)
#   make bench-sharpness         lmech vs PyHessian 0.1                          (.venv-bench)
#   make bench-weight-spectrum   lmech vs WeightWatcher 0.7.5                    (.venv-bench)
#   make bench-jax-peer          ensemble trainer vs JAX (jit/vmap/scan), 1 core  (.venv-jax)
#   make bench-sweep-scale       1,000 runs: lmech local / on Ray vs Ray Tune    (.venv-bench)
#   make bench                   all of the above, one after another
#
# Script arguments go in ARGS, e.g. `make bench-ensemble ARGS="--ks 8 --steps-scale 0.1"`.
# .venv-bench holds the peers lmech is compared against (they are not dependencies of
# lmech): torch first, then lmech, then bench/requirements-<name>.txt under a constraint
# that pins torch, so no peer can replace the CPU wheel. A stamp per requirements file
# makes a second run start at once.
PYTHON ?= python3
TORCH := torch==2.13.0
PIP_FLAGS := -q --disable-pip-version-check
VENV := .venv
BIN := $(VENV)/bin
BASE_STAMP := $(VENV)/.lmech-base-installed
STAMP := $(VENV)/.lmech-installed
BENCH_VENV := .venv-bench
BENCH_BIN := $(BENCH_VENV)/bin
BENCH_STAMP := $(BENCH_VENV)/.lmech-installed
BENCH_CONSTRAINTS := $(BENCH_VENV)/constraints.txt
ARGS ?=
# `make demo`'s tour of the atlas: one or two phenomena of each kind, so install + tour fit in 10
# minutes on a laptop CPU (all of it: `.venv/bin/lmech atlas --fast`, or `make demo DEMO_ONLY=`)
DEMO_PHENOMENA := deep-linear-dynamics double-descent edge-of-stability mup-transfer grokking critical-batch \
	mup-transfer-transformer scaling-law-lm mode-connectivity catapult pac-bayes forecast-batch forecast-curve
DEMO_ONLY ?= $(foreach name,$(DEMO_PHENOMENA),--only $(name))

BENCHES := bench-ensemble bench-ntk bench-sharpness bench-weight-spectrum bench-sweep-scale
ifneq ($(wildcard bench/functional_ensemble.py),)
BENCHES += bench-functional-ensemble
endif

.PHONY: demo test test-fast bench $(BENCHES) bench-functional-ensemble clean

# lmech alone (what `make demo` needs), then the test extras on top (what `make test` needs)
$(BASE_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) $(TORCH)
	$(BIN)/python -m pip install $(PIP_FLAGS) -e .
	touch $(BASE_STAMP)

$(STAMP): $(BASE_STAMP)
	$(BIN)/python -m pip install $(PIP_FLAGS) -e ".[test,tensorboard,mlflow,ray]"  # the export tests read back with their readers; Ray on loopback
	touch $(STAMP)

demo: $(BASE_STAMP)
	$(BIN)/lmech atlas --fast $(DEMO_ONLY)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m "not slow"

# --- benchmarks that need only lmech: the dev .venv ---
bench-ensemble: $(STAMP)
	$(BIN)/python bench/ensemble.py $(ARGS)

bench-ntk: $(STAMP)
	$(BIN)/python bench/ntk.py $(ARGS)

bench-functional-ensemble: $(STAMP)
	$(BIN)/python bench/functional_ensemble.py $(ARGS)

# --- benchmarks against peers: .venv-bench ---
$(BENCH_STAMP): pyproject.toml
	test -x $(BENCH_BIN)/python || $(PYTHON) -m venv $(BENCH_VENV)
	echo "$(TORCH)" > $(BENCH_CONSTRAINTS)
	$(BENCH_BIN)/python -m pip install $(PIP_FLAGS) $(TORCH)
	$(BENCH_BIN)/python -m pip install $(PIP_FLAGS) -c $(BENCH_CONSTRAINTS) -e .
	touch $(BENCH_STAMP)

# PyHessian declares torch (any version); the constraint keeps the installed 2.13.0.
$(BENCH_VENV)/.req-%: bench/requirements-%.txt $(BENCH_STAMP)
	$(BENCH_BIN)/python -m pip install $(PIP_FLAGS) -c $(BENCH_CONSTRAINTS) -r $<
	$(BENCH_BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $@

bench-sharpness: $(BENCH_VENV)/.req-sharpness
	$(BENCH_BIN)/python bench/sharpness.py $(ARGS)

bench-weight-spectrum: $(BENCH_VENV)/.req-weight-spectrum
	$(BENCH_BIN)/python bench/weight_spectrum.py $(ARGS)

bench-sweep-scale: $(BENCH_VENV)/.req-sweep-scale
	$(BENCH_BIN)/python bench/sweep_scale.py $(ARGS)

# --- lmech vs JAX: its own .venv-jax (torch first, lmech, then jax under the torch constraint) ---
JAX_VENV := .venv-jax
JAX_BIN := $(JAX_VENV)/bin
JAX_CONSTRAINTS := $(JAX_VENV)/constraints.txt
# the core both sides are pinned to (taskset, where it exists, and the script itself)
JAX_CPU ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) - 1 )))

$(JAX_VENV)/.req-jax: bench/requirements-jax.txt pyproject.toml
	test -x $(JAX_BIN)/python || $(PYTHON) -m venv $(JAX_VENV)
	echo "$(TORCH)" > $(JAX_CONSTRAINTS)
	$(JAX_BIN)/python -m pip install $(PIP_FLAGS) $(TORCH)
	$(JAX_BIN)/python -m pip install $(PIP_FLAGS) -c $(JAX_CONSTRAINTS) -e .
	$(JAX_BIN)/python -m pip install $(PIP_FLAGS) -c $(JAX_CONSTRAINTS) -r bench/requirements-jax.txt
	$(JAX_BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $@

.PHONY: bench-jax-peer
bench-jax-peer: $(JAX_VENV)/.req-jax
	$(if $(shell command -v taskset),taskset -c $(JAX_CPU)) $(JAX_BIN)/python bench/jax_peer.py $(ARGS)

# All benchmarks, one at a time (ARGS, if given, goes to each).
bench:
	@for target in $(BENCHES); do $(MAKE) --no-print-directory $$target || exit 1; done

clean:
	rm -rf $(VENV) $(BENCH_VENV) lmech-report lmech-runs
