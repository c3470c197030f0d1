"""Exit statuses with a meaning, shared by ``kedro run`` (the project's ``run`` command) and ``neurontune``.

A CI job can tell a refused challenger from bad configuration, from a server that was down,
from a crash, and act on each (GitLab's ``allow_failure: exit_codes``, a retry on
:data:`UNREACHABLE`). Documented in docs/ci_cd.md.

===  =======================  ========================================================================
0    :data:`OK`               done: promoted, already champion, nothing to promote, or refused with
                              ``fail_on_refusal`` off
1    :data:`FAILED`           anything else: a crash or a bug (Python's own status for an uncaught error)
2    :data:`BAD_INPUT`        bad input or configuration: parameters, data, a model URI, credentials the
                              server refuses (HTTP 401/403), a missing file
3    :data:`REFUSED`          the promotion gate refused the challenger and ``fail_on_refusal`` is on
4    :data:`UNREACHABLE`      infrastructure unreachable: the tracking server or the object store did not
                              answer (connection refused, timeout, DNS, HTTP 5xx)
===  =======================  ========================================================================
"""

from __future__ import annotations

from collections.abc import Iterator

OK = 0
FAILED = 1
BAD_INPUT = 2
REFUSED = 3
UNREACHABLE = 4

MEANINGS = {
    OK: "done",
    FAILED: "failed (an unexpected error)",
    BAD_INPUT: "bad input or configuration",
    REFUSED: "challenger refused by the promotion gate",
    UNREACHABLE: "infrastructure unreachable (tracking server or object store)",
}


def exit_code_for(error: BaseException) -> int:
    """The status for ``error``, judged on it and every exception it was raised from or during.

    Kedro wraps a dataset's failure in ``DatasetError`` and MLflow turns a refused connection into
    ``MlflowException``; the cause underneath decides. A refusal outranks an outage, which outranks
    bad input: the most specific meaning wins.
    """
    chain = list(_chain(error))
    for code, kinds in ((REFUSED, _refused()), (UNREACHABLE, _unreachable()), (BAD_INPUT, _bad_input())):
        if any(isinstance(link, kinds) for link in chain):
            return code
    from kedro.io import DatasetError

    # a DatasetError at the root was raised by a dataset itself (a missing or unreadable file); one over another
    # exception only wraps it, and that exception decided above (a bug under it stays FAILED)
    return BAD_INPUT if isinstance(chain[-1], DatasetError) else FAILED


def describe(code: int) -> str:
    """``exit 3: challenger refused by the promotion gate``: the line a command ends a failure with."""
    return f"exit {code}: {MEANINGS.get(code, 'unknown status')}"


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _refused() -> tuple[type, ...]:
    from neurontune.tracking.promotion import PromotionRefused

    return (PromotionRefused,)


def _unreachable() -> tuple[type, ...]:
    import urllib.error

    from neurontune.tracking.connection import TrackingServerUnreachable

    kinds: list[type] = [TrackingServerUnreachable, ConnectionError, TimeoutError, urllib.error.URLError]
    try:
        import requests

        kinds += [requests.exceptions.ConnectionError, requests.exceptions.Timeout, requests.exceptions.RetryError]
    except ImportError:
        pass
    try:
        import botocore.exceptions

        kinds += [botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError]
    except ImportError:
        pass
    return tuple(kinds)


def _bad_input() -> tuple[type, ...]:
    import click
    from kedro.config import MissingConfigException

    from neurontune.tracking.connection import NotPermittedError, TrackingServerError

    # ValueError is the house's validation error (parameters, data, URIs): every check names what was expected
    return (ValueError, FileNotFoundError, NotPermittedError, TrackingServerError, MissingConfigException,
            click.UsageError)
