"""The ingest skeleton every feed shares: inputs, skip what landed, fan out, stage, commit,
count, record."""

from __future__ import annotations

from pathlib import Path

from omicslake.errors import InputError


def expand_inputs(paths: list[str], suffixes: tuple[str, ...]) -> list[str]:
    """Files as given, and the matching files inside any folder given, each once.

    A path that does not exist is a mistake in the command, not a bad input, so it stops the
    job before anything is read.
    """
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out += sorted(str(f) for f in path.rglob("*") if f.is_file() and f.name.endswith(suffixes))
        elif path.exists():
            out.append(str(path))
        else:
            raise InputError(f"{p}: no such file or folder")
    return list(dict.fromkeys(out))
