"""The ``neurovision`` command line: one argparse subcommand per tool.

``neurovision app`` starts the explorer (Streamlit) on the pipeline's outputs or a bundle;
``neurovision table`` prints the per-subject results table of the DVC experiments;
``neurovision compare A B`` compares two runs with paired tests.
Add a subcommand by writing an ``add_<name>(subparsers)`` function that registers its parser
with ``set_defaults(func=...)``, and listing it in :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

APP_SCRIPT = Path(__file__).resolve().parent / "app" / "streamlit_app.py"


def streamlit_command(root: str | Path, bundle: str | Path | None, port: int, address: str,
                      browser: bool) -> list[str]:
    """The ``streamlit run`` command line that serves the explorer."""
    source = ["--bundle", str(Path(bundle).resolve())] if bundle else [
        "--root", str(Path(root).resolve())]
    return [sys.executable, "-m", "streamlit", "run", str(APP_SCRIPT),
            "--server.port", str(port), "--server.address", address,
            "--server.headless", "false" if browser else "true",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
            "--", *source]


def run_app(args: argparse.Namespace) -> int:
    cmd = streamlit_command(args.root, args.bundle, args.port, args.address, args.browser)
    # Become the Streamlit server (no child process): a signal sent to `neurovision app`
    # (Ctrl-C, SIGTERM from a supervisor or a test) reaches the server itself, so nothing
    # is left running after it.
    os.execv(cmd[0], cmd)
    return 0  # not reached


def add_app(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="start the explorer (Streamlit) in the browser",
                       description="Start the explorer on the pipeline's outputs in --root "
                                   "(default: here) or on a bundle written by the bundle "
                                   "stage (--bundle).")
    p.add_argument("--root", default=".", help="project root whose pipeline has run")
    p.add_argument("--bundle", default=None, help="a bundle directory (instead of --root)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1",
                   help="address to serve on (0.0.0.0 to share on the network)")
    p.add_argument("--browser", action=argparse.BooleanOptionalAction, default=True,
                   help="open a browser tab (--no-browser on a server)")
    p.set_defaults(func=run_app)


def add_table(sub: argparse._SubParsersAction) -> None:
    from neurovision import report

    p = sub.add_parser("table", help="per-subject results table (Markdown) from dvc exp show",
                       description=report.__doc__.splitlines()[0])
    report.add_arguments(p)
    p.set_defaults(func=report.run)


def add_compare(sub: argparse._SubParsersAction) -> None:
    from neurovision import report

    p = sub.add_parser("compare", help="paired tests of two runs on the same test trials",
                       description=report.compare_table.__doc__.splitlines()[0])
    report.add_compare_arguments(p)
    p.set_defaults(func=report.run_compare)


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_app, add_table,
                                                                   add_compare]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="neurovision",
                                 description="Zero-shot EEG-to-image retrieval tools.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
