# eoflows: `make demo` and `make test` each install the project into .venv first (fast when up to date).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.eoflows-installed

.PHONY: install demo test bench lint clean image

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

demo: install
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/python -m eoflows.demo

# three workers on two cores: the tests wait on servers and subprocesses (the CPU was 83 % busy with three)
test: install
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/python -m pytest -n 3 --dist loadfile

bench: install
	$(BIN)/python bench/startup.py
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/python bench/s2_indices.py
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/python bench/end_to_end.py
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/python bench/gateway_overhead.py
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/python bench/burned_area.py
	$(BIN)/python bench/burned_area_http.py
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/python bench/ogc_jobs.py
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/python bench/downsample.py
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/python bench/monitor.py
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/python bench/load.py

# the Docker image ghcr.io/eoflows/eoflows:<version> (the name the deployments run), with no registry
# (image/build.sh; the tests build it the same way);
# EXTRA="folder-or-wheel ..." installs application packages of one's own into it too
image: install
	PYTHON=$(abspath $(BIN))/python EXTRA="$(EXTRA)" image/build.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) demo-output .pytest_cache
