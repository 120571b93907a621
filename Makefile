# Two entry points for a fresh Debian/Ubuntu machine (both safe to re-run):
#   make search   install everything, then run the main job (a 50-trial study)
#   make test     install everything, then run the test suite
PY      := .venv/bin/python
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DATASET := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
TRIALS  ?= 50

.PHONY: install cluster search test bench lint clean

install: .venv/.installed $(DATASET) /usr/bin/chromium

# Debian's package holds the original four IDX files; nothing is downloaded at run time.
$(DATASET):
	$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist

# Headless Chromium for the browser check of the MLflow UI.
/usr/bin/chromium:
	$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium chromium-driver

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

search: install
	$(PY) -m search.run --trials $(TRIALS)

# Two test processes, one per core; tests sharing a costly study fixture stay in one
# process (--dist loadgroup, marks set in tests/conftest.py); the MLflow server is shared.
# A single-node Slurm cluster on this machine, for tests/test_slurm.py (installs slurm-wlm and
# munge once; starts the daemons if they are not running).
cluster:
	bash deploy/slurm/local-cluster.sh

test: install cluster
	$(PY) -m pytest -q -n 2 --dist loadgroup

bench: install
	$(PY) -m search.bench --batch-size 128

lint: install
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

clean:
	rm -rf .venv *.egg-info .pytest_cache .ruff_cache
