#!/usr/bin/env bash
# The steps of the CI/CD templates (templates/ci/github-workflow.yml, templates/ci/gitlab-ci.yml; docs/ci_cd.md),
# one per subcommand, so that GitHub Actions and GitLab CI run the very same commands:
#
#   steps.sh install          .venv from the pinned requirements, unless the cached one was built from the same pins
#   steps.sh pull             dvc pull the benchmark's stages from the DVC remote (nothing there yet is fine)
#   steps.sh run main|review  kedro run + the promotion gate; main may move @champion, review is a dry run
#   steps.sh push             dvc commit + dvc push the benchmark's stages
#   steps.sh summary [ARGS]   neurontune ci-summary --env $BENCHMARK ARGS
#   steps.sh stamp            what `install` compares with the cached .venv
#
# `run` exits with kedro run's status (0 done, 1 crash, 2 bad input or configuration, 3 challenger refused by
# the gate, 4 tracking server or object store unreachable: src/neurontune/exit_codes.py).
# Settings come from the environment: BENCHMARK (the Kedro environment, default colored_mnist), KEDRO_PARAMS
# (extra --params, comma-separated), KEDRO_RUN_ARGS (extra kedro run options), DVC_REMOTE (default: the
# repository's default remote), PYTHON (default python3). Credentials (MLFLOW_TRACKING_USERNAME/PASSWORD,
# AWS_ACCESS_KEY_ID/SECRET_ACCESS_KEY) are read from the environment by MLflow, DVC and s3fs themselves:
# this script never writes them to a file and never echoes a command line (no `set -x`).
set -euo pipefail

step=${1:?usage: steps.sh install|pull|run main|review|push|summary|stamp}
shift
BENCHMARK=${BENCHMARK:-colored_mnist}
PYTHON=${PYTHON:-python3}
export KEDRO_DISABLE_TELEMETRY=true PATH="$PWD/.venv/bin:$PATH"
remote=()
if [ -n "${DVC_REMOTE:-}" ]; then remote=(--remote "$DVC_REMOTE"); fi

# The benchmark's DVC stages (`NAME@BENCHMARK`, dvc.yaml's foreach); none when dvc.yaml does not list it.
stages() {
  dvc stage list --name-only | grep -E "@${BENCHMARK}\$" || true
}

# A virtualenv is not relocatable: the stamp names the pins, the interpreter and the folder it was built in.
stamp() {
  printf '%s %s %s\n' "$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)" \
    "$("$PYTHON" -c 'import sys; print(sys.version.split()[0])')" "$PWD"
}

case "$step" in
  stamp)
    stamp ;;
  install)
    if [ "$(cat .venv/.ci-stamp 2>/dev/null || true)" = "$(stamp)" ]; then
      echo "steps.sh install: .venv was built from these pins; nothing to install"
      exit 0
    fi
    rm -rf .venv
    "$PYTHON" -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
    .venv/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
    stamp > .venv/.ci-stamp ;;
  pull)
    mapfile -t targets < <(stages)
    if [ "${#targets[@]}" = 0 ]; then echo "steps.sh pull: dvc.yaml has no stage for $BENCHMARK"; exit 0; fi
    # --allow-missing: the first run of a benchmark finds nothing on the remote yet
    dvc pull --allow-missing "${remote[@]}" "${targets[@]}" ;;
  run)
    mode=${1:?usage: steps.sh run main|review}
    if [ -z "${MLFLOW_TRACKING_URI:-}" ]; then
      # without it kedro run would use a throwaway local mlflow.db: a gate against nothing (e.g. a fork's pull
      # request, which gets no secrets)
      echo "steps.sh run: MLFLOW_TRACKING_URI is not set; set it as a CI secret (docs/ci_cd.md)" >&2
      exit 2
    fi
    params=model_promotion.gate.fail_on_refusal=true
    case "$mode" in
      main) ;;
      review) params+=,model_promotion.gate.dry_run=true ;;
      *) echo "steps.sh run: expected main or review, got '$mode'" >&2; exit 2 ;;
    esac
    if [ -n "${KEDRO_PARAMS:-}" ]; then params+=",$KEDRO_PARAMS"; fi
    # KEDRO_RUN_ARGS is split into words on purpose (several options)
    # shellcheck disable=SC2086
    exec kedro run --env "$BENCHMARK" ${KEDRO_RUN_ARGS:-} --params "$params" ;;
  push)
    mapfile -t targets < <(stages)
    if [ "${#targets[@]}" = 0 ]; then echo "steps.sh push: dvc.yaml has no stage for $BENCHMARK"; exit 0; fi
    # kedro run wrote the outputs; record them in dvc.lock and the cache, then upload (content-addressed)
    dvc commit --force "${targets[@]}"
    dvc push "${remote[@]}" "${targets[@]}" ;;
  summary)
    exec neurontune ci-summary --env "$BENCHMARK" "$@" ;;
  *)
    echo "steps.sh: unknown step '$step' (install, pull, run, push, summary, stamp)" >&2
    exit 2 ;;
esac
