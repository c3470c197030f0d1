# Two commands do all set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export KEDRO_DISABLE_TELEMETRY := true
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test cicd-test mutation install clean-data dvc-yaml repro push pull status serve ui viz airflow-install airflow-dags airflow-test

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

# The GitLab CI template's jobs under gitlab-ci-local against MLflow + moto on 127.0.0.1 (marked slow: 3-7 min;
# .ci/run runs it after `make test`; needs gitlab-ci-local 4.70.1 and rsync, which .ci/run installs)
cicd-test: install
	$(BIN)/python -m pytest -m slow -n 0 tests/test_gitlab_ci_local.py $(PYTEST_ARGS)

# Mutation testing of the method's core and the promotion gate (modules: [tool.mutmut] in pyproject.toml;
# docs/testing.md). Slow and not part of `make test`; each mutant runs only the tests that reach it.
# MUTANTS narrows the run, e.g. `make mutation MUTANTS="neurontune.core.scoring*"`; JOBS = parallel mutants.
# One thread per math library: mutmut forks a child per mutant from a process whose OpenMP/BLAS pools
# already ran, and such a child spins until mutmut's CPU limit (a false "timeout", counted as killed).
JOBS ?= 2
mutation: install
	rm -rf mutants
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/mutmut run --max-children $(JOBS) $(MUTANTS)
	$(BIN)/python -m tests.mutation_score --survivors

clean-data:
	find data -type f ! -name .gitkeep ! -name metrics.json -delete

# dvc.yaml is generated from the Kedro pipelines and catalog (tests/test_dvc_stages.py fails when it is stale).
# No `install` prerequisite: it reads code and configuration only (`make install` once on a fresh clone).
dvc-yaml:
	$(BIN)/python -m neurontune.dvc_stages

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

# no GenAI job runner: its Huey worker processes are not needed to browse runs
ui: PORT ?= 5000
ui: install
	@echo "MLflow UI on $(TRACKING_URI): open http://127.0.0.1:$(PORT) (Ctrl-C stops)"
	$(WITH_VENV) MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri "$(TRACKING_URI)" --host 127.0.0.1 --port $(PORT)

viz: PORT ?= 4141
viz: install
	@echo "kedro-viz: open http://127.0.0.1:$(PORT) (Ctrl-C stops)"
	$(WITH_VENV) $(BIN)/kedro viz run --host 127.0.0.1 --port $(PORT) --no-browser

# Apache Airflow in its own virtualenv (its pins are its own); the DAG's tasks call $(BIN)/kedro.
AIRFLOW_VENV ?= .airflow-venv
DAG_ENV ?= local

$(AIRFLOW_VENV)/.installed: airflow/requirements.txt
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install --quiet --disable-pip-version-check -r airflow/requirements.txt
	touch $@

airflow-install: $(AIRFLOW_VENV)/.installed

# Generated, not committed: airflow/dags/neurontune[_<env>]_dag.py for the default pipeline of DAG_ENV,
# one task per group of nodes joined by in-memory datasets (kedro-airflow's --group-by memory).
airflow-dags: install
	$(BIN)/kedro airflow create --env $(DAG_ENV) --group-by memory -j airflow/dag_template.j2 -t airflow/dags \
		--params project_path=$(CURDIR)

# The DAG on a real Airflow 3 against S3 (moto) and an MLflow server, all on 127.0.0.1 (tests/test_airflow.py).
airflow-test: install airflow-install
	NEURONTUNE_AIRFLOW=$(CURDIR)/$(AIRFLOW_VENV)/bin/airflow $(BIN)/python -m pytest -m slow tests/test_airflow.py $(PYTEST_ARGS)
