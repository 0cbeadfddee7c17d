# Set-up and the two jobs. `make bench` and `make test` create the virtual environment
# on first use (and again whenever pyproject.toml changes).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
BENCH ?= bench

.PHONY: bench test clean-venv

$(BIN)/kws: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The main job: the benchmark suite (the smoke matrix, the property checks, the component
# benchmarks) on the embedded default dataset; history and summary in results/.
bench: $(BIN)/kws
	$(BIN)/python -m pytest $(BENCH) --benchmark-autosave --benchmark-storage=results/benchmarks $(PYTEST_ARGS)

# The tests.
test: $(BIN)/kws
	$(BIN)/python -m pytest tests -n auto --dist loadscope $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
