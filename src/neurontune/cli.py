"""The project's Kedro commands: ``kedro run`` exactly as Kedro defines it, with exit statuses that mean something.

Kedro picks up ``<package>.cli.cli`` and lets its commands override the built-in ones (``kedro run``,
``python -m neurontune``). This ``run`` takes the same options and calls the same function; only a
failure ends differently: the error is shown as before, then one line names the status, from
:mod:`neurontune.exit_codes` (3 when the gate refused the challenger, 2 for bad input or
configuration, 4 when a server did not answer, 1 for anything else).
"""

from __future__ import annotations

import sys

import click
from kedro.framework.cli.project import run as kedro_run

from neurontune.exit_codes import FAILED, describe, exit_code_for


@click.group(name="neurontune")
def cli() -> None:
    """Project commands (they override Kedro's built-in ones of the same name)."""


def _run(**options):
    try:
        return kedro_run.callback(**options)
    except Exception as error:  # every failure gets a status; the error itself is shown as Kedro shows it
        code = exit_code_for(error)
        if code == FAILED:
            raise
        sys.excepthook(type(error), error, error.__traceback__)
        click.echo(f"kedro run: {describe(code)}", err=True)
        sys.exit(code)


_STATUSES = ("Exit status: 0 done, 1 crash, 2 bad input or configuration, 3 challenger refused by the "
             "promotion gate, 4 tracking server or object store unreachable (docs/ci_cd.md).")
run = click.Command(name="run", callback=_run, params=kedro_run.params, help=f"{kedro_run.help}\n\n{_STATUSES}",
                    short_help=kedro_run.short_help, context_settings=kedro_run.context_settings)
cli.add_command(run)
