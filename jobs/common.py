"""Small helpers every job shares: CLI entry points and input discovery."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from omicslake.errors import InputError, OmicslakeError


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


def main_for(run: Callable, build_parser: Callable[[argparse.ArgumentParser], None], doc: str) -> None:
    """``python -m jobs.X`` / spark-submit entry: parse args, run on the configured engine."""
    parser = argparse.ArgumentParser(description=doc)
    build_parser(parser)
    args = vars(parser.parse_args())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from omicslake.session import get_spark
    from omicslake.settings import load_settings

    try:
        settings = load_settings()
        result = run(get_spark(settings), settings, **args)
    except OmicslakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(result.to_dict(), default=str))
