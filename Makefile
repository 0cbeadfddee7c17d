# Set-up and the two jobs. `make bench` and `make test` create the virtual environment
# on first use (and again whenever pyproject.toml changes).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: bench matrix test clean-venv

$(BIN)/kws: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The main job: the component benchmarks and the property checks (one process, so that
# timings do not share the cores), then the smoke matrix on the embedded default dataset
# with WORKERS pytest-xdist workers (cases that share trained stages stay together);
# history, sessions, summary, plots and report in results/.
WORKERS ?= 2
bench: $(BIN)/kws
	$(BIN)/python -m pytest bench --ignore=bench/test_matrix.py --benchmark-autosave --benchmark-storage=results/benchmarks $(PYTEST_ARGS)
	$(MAKE) --no-print-directory matrix

# The benchmark matrix alone (`make matrix PYTEST_ARGS="--kws-tier nightly --kws-gate"`).
matrix: $(BIN)/kws
	$(BIN)/python -m pytest bench/test_matrix.py -n $(WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The tests.
test: $(BIN)/kws
	$(BIN)/python -m pytest tests -n auto --dist loadscope $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
