"""Staleness by content, not file times: a ledger of the contents each file had, and since when.

At the end of every ``kedro run`` the run guard records, for every file the run read or wrote and every
parameter file of its environment, ``(sha256, mtime_ns)`` when that pair is new
(``<project>/.neurontune-content.json``). ``neurontune status`` asks :func:`unchanged_since` before calling an
input that is newer than a node's outputs a change: the content the file had when the outputs were written
is the recorded entry with the latest time not after them; when the file's content now is the same, only its
time changed (an identical file copied again) and nothing is stale.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from neurontune.tracking.digests import file_digest

LEDGER = ".neurontune-content.json"
#: Entries kept per file (the oldest go first).
MAX_ENTRIES = 20


def load_ledger(project: Path) -> dict[str, list[list]]:
    try:
        return json.loads((project / LEDGER).read_text())
    except (OSError, ValueError):
        return {}


def record_contents(project: Path, paths) -> None:
    """Add ``[sha256, mtime_ns]`` for each existing file of ``paths`` whose current time is not recorded yet."""
    ledger = load_ledger(project)
    for path in paths:
        path = Path(path) if Path(path).is_absolute() else project / path
        if not path.is_file():
            continue
        key, mtime = _key(path, project), path.stat().st_mtime_ns
        entries = ledger.setdefault(key, [])
        if any(entry[1] == mtime for entry in entries):
            continue
        entries.append([file_digest(path), mtime])
        entries.sort(key=lambda entry: entry[1])
        del entries[:-MAX_ENTRIES]
    temporary = project / f"{LEDGER}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(ledger, sort_keys=True))
    os.replace(temporary, project / LEDGER)


def unchanged_since(ledger: dict, path: Path, project: Path, when_ns: int) -> bool:
    """Whether ``path`` holds the content it had at ``when_ns`` (by the ledger; False when it does not know)."""
    entries = [entry for entry in ledger.get(_key(path, project), []) if entry[1] <= when_ns]
    if not entries or not path.is_file():
        return False
    return max(entries, key=lambda entry: entry[1])[0] == file_digest(path)


def _key(path: Path, project: Path) -> str:
    try:
        return path.resolve().relative_to(project.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()
