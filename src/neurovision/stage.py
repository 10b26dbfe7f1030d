"""What every stage entry script shares: argument parsing, logging, clean failure."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from neurovision.errors import NeurovisionError
from neurovision.params import Params, load_params

log = logging.getLogger("neurovision")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="the pipeline's params file")
    return p


def params_from(args: argparse.Namespace) -> Params:
    """Validate the whole params file (fails in the first second on any typo)."""
    return load_params(args.params)


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` as one line, without any traceback text.

    torch's DataLoader re-raises an exception from a worker process as the same type with the
    worker's traceback as its message ("Caught DataError in DataLoader worker process 0.
    Original Traceback ..."); the original message is the traceback's last line.
    """
    msg = str(exc).strip()
    if "\nOriginal Traceback" in msg:
        last = msg.splitlines()[-1]
        msg = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(msg.split())


#: Set (to anything but "" or "0") to see every library's INFO messages, not only ours.
VERBOSE_ENV = "NEUROVISION_VERBOSE"


def configure_logging() -> None:
    """Our INFO messages, and only WARNING and above from other libraries (open_clip logs
    several INFO lines per model load) unless ``NEUROVISION_VERBOSE`` is set."""
    verbose = os.environ.get(VERBOSE_ENV, "") not in ("", "0")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("neurovision").setLevel(logging.DEBUG if verbose else logging.INFO)


def run(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> int:
    """Run a stage's ``main``; a :class:`NeurovisionError` becomes one line and exit 1."""
    configure_logging()
    try:
        main(argv)
    except NeurovisionError as exc:
        log.error("%s", one_line(exc))
        return 1
    return 0
