"""Errors that are the user's to fix print as one message, not a traceback.

Kedro's CLI lets every exception reach Python's ``sys.excepthook`` (rich's, which prints every frame).
:func:`install` wraps it: an error of :data:`USER_ERRORS` — a bad parameter, configuration, tracking
server, permission, run lock or stale input — and the tracking server's own refusals (HTTP 401/403)
print as ``Error: <message>`` on stderr, exit status 1; anything else keeps its full traceback.
"""

from __future__ import annotations

import sys

from neurontune.config_loader import ConfigurationError
from neurontune.parameters import InvalidParameters
from neurontune.run_guard import RunLockedError, StaleDataError
from neurontune.tracking.connection import NotPermittedError, TrackingServerError, refusal_message
from neurontune.tracking.redact import redact_text

USER_ERRORS = (ConfigurationError, InvalidParameters, RunLockedError, StaleDataError, NotPermittedError,
               TrackingServerError)


def user_message(error: BaseException) -> str | None:
    """The one-line message for a user error anywhere in ``error``'s chain, else None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, USER_ERRORS):
            return f"{type(error).__name__}: {error}"
        refused = refusal_message(error)
        if refused:
            return refused
        error = error.__cause__ or error.__context__
    return None


def install() -> None:
    """Wrap the current ``sys.excepthook`` once."""
    previous = sys.excepthook
    if getattr(previous, "neurontune", False):
        return

    def hook(kind, error, traceback):
        message = user_message(error)
        if message is None:
            return previous(kind, error, traceback)
        print(f"Error: {redact_text(message)}", file=sys.stderr)

    hook.neurontune = True
    sys.excepthook = hook
