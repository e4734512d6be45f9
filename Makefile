# The two commands a user needs: `make run` and `make test`. Both build the
# project-local virtual environment (.venv) on first use and refresh it when
# pyproject.toml or constraints.txt change.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export KEDRO_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1

.PHONY: setup run test lint bench viz mlflow-ui mlflow-server clean-data

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

run: $(STAMP)  ## full default pipeline on the embedded synthetic dataset
	$(BIN)/kedro run $(ARGS)

test: $(STAMP)  ## format check + lint + the whole test suite (CPU only, no network)
	$(BIN)/ruff format --check src tests scripts benchmarks
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/python -m pytest $(ARGS)

bench: $(STAMP)  ## MKD step benchmark (prints overhead_ratio last)
	$(BIN)/python benchmarks/bench.py $(ARGS)

viz: $(STAMP)
	$(BIN)/kedro viz run

mlflow-ui: $(STAMP)  ## MLflow UI; prints the address of the mkdseg runs on the training view
	@$(BIN)/python -m mkdseg.tracking.mlflow_ui
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db

# A tracking server that many jobs write to at once (SQLite is not made for many writers): its
# own store and artifact root under mlflow-server/, bound to this machine unless MLFLOW_HOST is
# set. Point runs at it with MLFLOW_TRACKING_URI=http://127.0.0.1:$(MLFLOW_PORT).
MLFLOW_HOST ?= 127.0.0.1
MLFLOW_PORT ?= 5000
MLFLOW_SERVER_DIR ?= mlflow-server
mlflow-server: $(STAMP)  ## MLflow tracking server for concurrent jobs (docs/usage.md)
	@mkdir -p $(MLFLOW_SERVER_DIR)/artifacts
	$(BIN)/mlflow server --host $(MLFLOW_HOST) --port $(MLFLOW_PORT) \
		--backend-store-uri sqlite:///$(abspath $(MLFLOW_SERVER_DIR))/mlflow.db \
		--artifacts-destination $(abspath $(MLFLOW_SERVER_DIR))/artifacts

clean-data:  ## remove generated data, checkpoints and the tracking store
	find data -type f ! -name .gitkeep -delete
	find data -mindepth 1 -type d -empty -delete  # generated folders; tracked ones keep their .gitkeep
	rm -rf mlflow.db mlartifacts
