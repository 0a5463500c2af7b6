"""`gifstream <command>`: the engine's one command-line entry point (arguments in `parser.py`, the commands in
`commands.py`); errors end as one line and an exit status (`exit_codes.py`), a bug also as a crash log."""

from __future__ import annotations

import datetime
import os
import sys
import tempfile
import traceback

from .. import __version__
from ..conventions import ERROR_PREFIX
from ..errors import GIFStreamError
from .exit_codes import EXIT_INTERNAL_ERROR, EXIT_INTERRUPTED, EXIT_USER_ERROR
from .parser import build_parser

__all__ = ["EXIT_INTERNAL_ERROR", "EXIT_INTERRUPTED", "EXIT_USER_ERROR", "build_parser", "main"]
CRASH_DIR_ENV = "GIFSTREAM_CRASH_DIR"


def one_line(text: str) -> str:
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def write_crash_log(argv: list[str] | None) -> str:
    """A file holding the command and the traceback of the exception being handled; its path."""
    folder = os.environ.get(CRASH_DIR_ENV) or os.path.join(tempfile.gettempdir(), "gifstream-crashes")
    os.makedirs(folder, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(folder, f"crash-{stamp}-{os.getpid()}.log")
    with open(path, "w") as f:
        f.write(f"gifstream {__version__}\ncommand: {' '.join(sys.argv[:1] + list(argv if argv is not None else sys.argv[1:]))}\n\n")
        f.write(traceback.format_exc())
    return path


def main(argv: list[str] | None = None) -> int:
    """Exit status 0, EXIT_USER_ERROR for bad input (one line naming it), EXIT_INTERNAL_ERROR for a bug."""
    args = build_parser().parse_args(argv)
    from ..events import EventWriter

    events = EventWriter(enabled=bool(getattr(args, "events", False)))
    try:
        args.func(args)
    except GIFStreamError as exc:
        message = one_line(exc)
        print(f"{ERROR_PREFIX}{message}", file=sys.stderr)
        events.error(message)
        return getattr(exc, "exit_status", EXIT_USER_ERROR)  # e.g. setup-gpu without CUDA (gpu_setup.EXIT_NO_CUDA)
    except KeyboardInterrupt:
        print("gifstream: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the last-resort net: a bug, reported as one line and a crash log
        try:
            where = f"the traceback is in {write_crash_log(argv)}"
        except OSError as log_exc:
            traceback.print_exc()
            where = f"no crash log could be written ({log_exc.strerror or log_exc}); the traceback is above"
        message = f"internal error: {type(exc).__name__}: {one_line(exc)[:300]}; {where}; please report it"
        print(f"gifstream: {message}", file=sys.stderr)
        events.error(message)
        return EXIT_INTERNAL_ERROR
    return 0
