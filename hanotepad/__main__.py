"""``hanotepad [FILE]``: start the editor (also ``python -m hanotepad``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from hanotepad import __version__


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="hanotepad",
        description="A text editor that autosaves every change and reopens where you left off.",
    )
    parser.add_argument("file", nargs="?", help="file to edit (created on the first save)")
    parser.add_argument(
        "--log",
        metavar="PATH",
        default=os.environ.get("HANOTEPAD_LOG"),
        help="append a debug log to PATH (default: $HANOTEPAD_LOG, else no log)",
    )
    parser.add_argument("--version", action="version", version=f"hanotepad {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.log:
        logging.basicConfig(
            filename=args.log,
            level=logging.INFO,
            format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
        )
        logging.getLogger("hanotepad").setLevel(logging.DEBUG)
    if not sys.stdin.isatty() or not sys.stdout.isatty():
        print("hanotepad: needs a terminal (run it in a terminal or a pty)", file=sys.stderr)
        raise SystemExit(2)
    # Hand the GIL over every millisecond rather than every 5: the autosave thread
    # then waits ~1 ms, not ~5 ms, after each system call while the UI renders.
    sys.setswitchinterval(0.001)
    from hanotepad.app import make_app

    app = make_app(args.file)
    app.run()
    raise SystemExit(app.return_code or 0)


if __name__ == "__main__":
    main()
