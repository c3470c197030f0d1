"""Secrets never printed: a password in a URI (``http://user:PASSWORD@host``) is redacted before it
reaches a log, an error, a tag or a param, and taken out of the URI MLflow is given (it travels as
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` instead)."""

from __future__ import annotations

import logging
import re
import urllib.parse

REDACTED = "***"
#: ``scheme://user:password@`` anywhere in a text (the password: anything up to the ``@``, no space or slash).
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*):(?P<password>[^\s/@]+)@")


def redact_text(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` replaced by ``***``."""
    return _USERINFO.sub(lambda match: f"{match['head']}:{REDACTED}@", str(text))


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """``(uri without user info, username, password)``; names are percent-decoded."""
    parts = urllib.parse.urlsplit(uri or "")
    if "@" not in parts.netloc:
        return uri, None, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    username, _, password = userinfo.partition(":")
    clean = urllib.parse.urlunsplit(parts._replace(netloc=host))
    return clean, urllib.parse.unquote(username) or None, urllib.parse.unquote(password) if password else None


def adopt_uri_credentials(uri: str, environ) -> str:
    """``uri`` without its user info, which becomes ``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD`` in ``environ``
    (values already set win)."""
    clean, username, password = split_credentials(uri or "")
    for key, value in (("MLFLOW_TRACKING_USERNAME", username), ("MLFLOW_TRACKING_PASSWORD", password)):
        if value and not environ.get(key):
            environ[key] = value
    return clean


def move_credentials_out_of_uri(environ, variable: str = "MLFLOW_TRACKING_URI") -> bool:
    """:func:`adopt_uri_credentials` on ``environ[variable]``, in place; return whether the URI held any."""
    uri = environ.get(variable) or ""
    clean = adopt_uri_credentials(uri, environ)
    if clean != uri:
        environ[variable] = clean
    return clean != uri


class RedactingFilter(logging.Filter):
    """Redacts URI passwords in every record a handler emits (message and arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add :class:`RedactingFilter` to every handler of ``logger`` (the root logger) that lacks one."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(found, RedactingFilter) for found in handler.filters):
            handler.addFilter(RedactingFilter())
