# Two commands do all set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export KEDRO_DISABLE_TELEMETRY := true
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test install clean-data repro push pull status

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
