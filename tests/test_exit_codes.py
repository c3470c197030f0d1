"""Exit statuses: each failure is judged on the exceptions under it (Kedro and MLflow wrap the cause)."""

from __future__ import annotations

import pytest
import requests
from botocore.exceptions import EndpointConnectionError
from kedro.io import DatasetError
from mlflow.exceptions import MlflowException

from neurontune.console import main
from neurontune.exit_codes import BAD_INPUT, FAILED, REFUSED, UNREACHABLE, describe, exit_code_for
from neurontune.tracking.connection import NotPermittedError, TrackingServerError, TrackingServerUnreachable
from neurontune.tracking.promotion import PromotionRefused
from tests.conftest import copy_project


def raised(outer: type, message: str, under: BaseException | None = None, *, implicitly: bool = False) -> BaseException:
    """``outer(message)`` raised from ``under`` (``raise … from``), or during its handling when ``implicitly``."""
    try:
        try:
            if under is not None:
                raise under
        except BaseException as cause:
            if implicitly:
                raise outer(message)  # noqa: B904  (what MLflow's HTTP client does)
            raise outer(message) from cause
        raise outer(message)
    except BaseException as error:  # noqa: BLE001
        return error


@pytest.mark.parametrize("error, code", [
    (PromotionRefused("v2 was refused"), REFUSED),
    (raised(DatasetError, "failed while saving", PromotionRefused("refused")), REFUSED),
    (TrackingServerUnreachable("cannot reach"), UNREACHABLE),
    (raised(DatasetError, "failed while loading", EndpointConnectionError(endpoint_url="http://127.0.0.1:1")), UNREACHABLE),
    (raised(MlflowException, "API request failed", requests.exceptions.ConnectionError("refused"), implicitly=True),
     UNREACHABLE),
    (raised(ValueError, "lineage", TrackingServerUnreachable("cannot reach")), UNREACHABLE),
    (ConnectionRefusedError(111, "Connection refused"), UNREACHABLE),
    (TrackingServerError("refused user 'x' (HTTP 401)"), BAD_INPUT),
    (NotPermittedError("not permitted"), BAD_INPUT),
    (raised(DatasetError, "failed while loading", FileNotFoundError("inputs.npz")), BAD_INPUT),
    (DatasetError("inputs.npz does not exist; run the pipeline that produces it first"), BAD_INPUT),
    (ValueError("labels out of range"), BAD_INPUT),
    (raised(DatasetError, "failed while saving", TypeError("unsupported operand")), FAILED),  # a bug, not the input
    (ZeroDivisionError("division by zero"), FAILED),
    (MlflowException("INTERNAL_ERROR"), FAILED),
])
def test_each_failure_gets_its_status(error, code):
    assert exit_code_for(error) == code


def test_a_refusal_outranks_an_outage_and_an_outage_outranks_bad_input():
    assert exit_code_for(raised(PromotionRefused, "refused", ConnectionError("down"), implicitly=True)) == REFUSED
    assert exit_code_for(raised(ValueError, "bad", ConnectionError("down"))) == UNREACHABLE


def test_each_status_has_a_meaning():
    assert [describe(code) for code in (BAD_INPUT, REFUSED, UNREACHABLE)] == [
        "exit 2: bad input or configuration", "exit 3: challenger refused by the promotion gate",
        "exit 4: infrastructure unreachable (tracking server or object store)"]
    assert len({0, FAILED, BAD_INPUT, REFUSED, UNREACHABLE}) == 5


def test_ci_summary_without_a_run_is_bad_input(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(copy_project(tmp_path))
    with pytest.raises(SystemExit) as stopped:
        main(["ci-summary", "--env", "ci"])
    assert stopped.value.code == BAD_INPUT
    assert "neurontune ci-summary:" in capsys.readouterr().err


def test_the_project_run_command_keeps_every_kedro_option():
    """``kedro run`` is the project's command (src/neurontune/cli.py) with Kedro's own options, unchanged."""
    from kedro.framework.cli.project import run as kedro_run

    from neurontune.cli import cli

    assert [param.name for param in cli.commands["run"].params] == [param.name for param in kedro_run.params]
