"""Keep the console for omicslake's own progress: the engine's log lines go to a file.

The embedded Sail server (Rust) and a JVM write their logs straight to file descriptor 2, below
Python. So the command points descriptor 2 at ``STATE/logs/engine.log`` and gives Python's
``sys.stderr`` a duplicate of the terminal, which is where click, logging and warnings write.
``OMICSLAKE_LOG_LEVEL`` (error, warn, info, debug, trace) keeps engine logs on the console at
that level instead.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

LEVELS = ("error", "warn", "info", "debug", "trace")


def _real_stderr() -> bool:
    """True when sys.stderr writes to descriptor 2 (not under a test runner's capture)."""
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, io.UnsupportedOperation, ValueError):
        return False


def route_engine_logs(state_dir: Path, verbose: bool = False) -> Path | None:
    """Send descriptor 2 to the engine log file; returns its path (None: left on the console)."""
    level = (os.environ.get("OMICSLAKE_LOG_LEVEL") or "").strip().lower()
    if verbose or level:
        os.environ.setdefault("RUST_LOG", level if level in LEVELS else "info")
        return None
    os.environ.setdefault("RUST_LOG", "info")
    if not _real_stderr():
        return None
    path = state_dir / "logs" / "engine.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    terminal = os.dup(2)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    os.close(log)
    sys.stderr = io.TextIOWrapper(os.fdopen(terminal, "wb", buffering=0), encoding="utf-8",
                                  errors="backslashreplace", write_through=True)
    return path
