"""User-facing errors and the command-line wrapper that reports them in one line.

Errors a user can cause (missing folder, unreadable file, wrong checkpoint) are raised as
:class:`UserError` deep inside the library and caught once, at the edge, by :func:`run_cli`,
which prints ``error: <message>`` and exits with status 2: no traceback, no lost work.
Internal invariants stay ``assert``s and do produce tracebacks, because they are bugs.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

log = logging.getLogger("basis")


class UserError(Exception):
    """A problem with the user's input; the message names the file or flag and what to do."""


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr as ``[basis] message``; INFO by default, DEBUG when ``verbose``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[basis] %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False                      # TensorFlow's own INFO chatter stays out of our log


def dataclass_from_dict(cls, fields: dict, what: str):
    """``cls(**fields)`` for a config dataclass, with unknown keys (a hand-edited or newer config.json)
    reported as a :class:`UserError` naming ``what`` instead of a ``TypeError``."""
    import dataclasses
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise UserError(f"{what}: unknown field(s) {', '.join(unknown)}")
    return cls(**fields)


def read_json(path, missing: str = "not found"):
    """The JSON value in ``path``; a missing file (message ``"<path>: <missing>"``) or invalid JSON is a
    :class:`UserError` naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: {missing}") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> None:
    """Run ``main(argv)`` and exit; a :class:`UserError` becomes one ``error:`` line and exit code 2."""
    setup_logging()
    try:
        code = main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # the reader went away (``... | head``): not an error of ours; keep Python from complaining at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    sys.exit(code or 0)
