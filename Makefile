# Set-up and the two jobs. `make bench` and `make test` create the virtual environment
# on first use (and again whenever pyproject.toml changes).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: bench matrix search-benchmark test clean-venv

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

# The search benchmark: a multi-objective TPE search against random search with the same
# budget and seed, at the nightly recipe on the default data, judged on both NPUs; then
# their comparison (hypervolume ratio, the fastest trial within 1 pp against QAT) in
# results/search/. About an hour on 2 cores; a resumed run continues where it stopped.
SEARCH_ARGS ?= --tier nightly --pathways lfilterqat,lfilter24qat --maximise accuracy \
	--minimise latency:ethos-u55-256 --minimise latency:ethos-u85-256 --max-drop 1.0 --trials 40
search-benchmark: $(BIN)/kws
	$(BIN)/kws search --study u55-u85-tpe --sampler tpe $(SEARCH_ARGS) & \
	$(BIN)/kws search --study u55-u85-random --sampler random $(SEARCH_ARGS); wait
	$(BIN)/kws search compare u55-u85-tpe u55-u85-random --max-drop 1.0

# The tests.
test: $(BIN)/kws
	$(BIN)/python -m pytest tests -n auto --dist loadscope $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
