# Each user-facing target creates .venv and installs the project first when needed, so
# `make demo` and `make test` each work as the only command on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
THROUGHPUT_ARGS ?= --device cpu --variant demo --batch-size 16 --steps 3 --workers 1

.PHONY: install demo test test-fast bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: the machines here carry these two wheels on local disk.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The main job (about 26 min on 2 AVX2 cores): FLIP patch dropping 0.75 vs none at equal
# training FLOPs (medflip/sweep/spaces.py DEMO: the same answer on any CPU), 6 seeds each,
# two 1-core trials at a time, then the frontier on the FLOPs axis with its headline line
# (accuracy difference at equal FLOPs, intervals over seeds: runs/demo/analysis/summary.md)
# and the same on this machine's training seconds (runs/demo/analysis/time/summary.md): the
# ratio of the two speedups is how well this implementation turns saved FLOPs into seconds.
demo: $(STAMP)
	# A second `make demo` resumes (and so keeps) the first one's sweep instead of failing.
	$(PY) sweeps/demo.py --name demo --seeds 6 --max-concurrent 2 --cpus-per-worker 1 $$(test -d runs/demo && echo --resume)
	$(PY) analysis/frontier.py runs/demo --by mask.image_ratio --select latest --x train_flops --out runs/demo/analysis
	$(PY) analysis/frontier.py runs/demo --by mask.image_ratio --select latest --x train_time_s --out runs/demo/analysis/time

# The whole suite, slow tests included (what CI runs).
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# Iterate quickly: skip the slow tests.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/data.py
	$(PY) benchmarks/masking.py
	$(PY) benchmarks/svd.py
	# CPU smoke figures; on a GPU node: make bench THROUGHPUT_ARGS='--device cuda --variant paper'
	$(PY) benchmarks/throughput.py $(THROUGHPUT_ARGS)
	$(PY) benchmarks/orchestration.py

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) runs .pytest_cache

# A one-machine Ray head as README "On a cluster" starts one (token auth, loopback dashboard).
.PHONY: cluster-up cluster-down test-cluster
cluster-up: $(STAMP)
	scripts/cluster-up.sh

cluster-down:
	scripts/cluster-down.sh

# Only the cluster tests (make test runs them too): browser, Prometheus, privacy, fault drills.
test-cluster: $(STAMP)
	$(PY) -m pytest tests/cluster $(PYTEST_ARGS)
