# Two commands do all set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export KEDRO_DISABLE_TELEMETRY := true
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test install clean-data repro push pull status serve ui viz

# Re-install only when the pins or the project metadata change.
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/kedro run
	$(BIN)/neurontune summary

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-data:
	find data -type f ! -name .gitkeep ! -name metrics.json -delete

# DVC with the project's virtualenv on PATH (stages call `kedro run --pipelines NAME`).
repro: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro

push pull status: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc $@

# Look at the results (loopback only). Each prints its URL; PORT overrides the port, e.g.
# `make serve PORT=5002`. `.venv/bin` goes on PATH because MLflow starts `uvicorn` from PATH.
BENCHMARK ?= colored_mnist
MODEL ?= neurontune-$(BENCHMARK)
TRACKING_URI := $(or $(MLFLOW_TRACKING_URI),sqlite:///$(CURDIR)/mlflow.db)
WITH_VENV := PATH="$(abspath $(BIN)):$$PATH" MLFLOW_TRACKING_URI="$(TRACKING_URI)"

serve: PORT ?= 5001
serve: install
	@err=$$($(WITH_VENV) $(BIN)/python -c "from mlflow import MlflowClient; MlflowClient().get_model_version_by_alias('$(MODEL)', 'champion')" 2>&1) || \
	  { printf 'make serve: no %s@champion in %s (%s)\nrun `make run` first\n' "$(MODEL)" "$(TRACKING_URI)" "$$(printf '%s' "$$err" | tail -n 1)"; exit 1; }
	@echo "serving models:/$(MODEL)@champion: POST JSON to http://127.0.0.1:$(PORT)/invocations (Ctrl-C stops)"
	$(WITH_VENV) $(BIN)/mlflow models serve -m "models:/$(MODEL)@champion" --env-manager local -h 127.0.0.1 -p $(PORT)

ui: PORT ?= 5000
ui: install
	@echo "MLflow UI on $(TRACKING_URI): open http://127.0.0.1:$(PORT) (Ctrl-C stops)"
	$(WITH_VENV) $(BIN)/mlflow ui --backend-store-uri "$(TRACKING_URI)" --host 127.0.0.1 --port $(PORT)

viz: PORT ?= 4141
viz: install
	@echo "kedro-viz: open http://127.0.0.1:$(PORT) (Ctrl-C stops)"
	$(WITH_VENV) $(BIN)/kedro viz run --host 127.0.0.1 --port $(PORT) --no-browser
