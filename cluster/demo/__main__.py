"""``python -m cluster.demo --store S --dir D [--auto]``: tell the story, step by step."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

from cluster.api import ApiError
from cluster.demo.story import STEPS, Demo, StepFailed
from shared_store import StoreError, open_store

BOLD, DIM, GREEN, RED, RESET = "\x1b[1m", "\x1b[2m", "\x1b[32m", "\x1b[31m", "\x1b[0m"


def say(text: str = "", style: str = "") -> None:
    colour = sys.stdout.isatty()
    print(f"{style}{text}{RESET}" if colour and style else text, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.demo")
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--dir", required=True, type=Path, help="the demo directory")
    parser.add_argument("--auto", action="store_true", help="no keyboard: run every step")
    args = parser.parse_args(argv)
    store = open_store(args.store)
    demo = Demo(store, args.store, args.dir, interactive=not args.auto)
    say("HA Notepad: the Microsoft Cluster Service story, live", BOLD)
    for number, step in enumerate(STEPS, 1):
        say()
        say(f"Step {number} of {len(STEPS)}: {step.title}", BOLD)
        say(f"  watch: {step.watch}", DIM)
        if step.before is not None:
            step.before(demo)
        if demo.interactive:
            try:
                input(f"  press Enter to {step.prompt} (ctrl+c ends the walkthrough) ")
            except (EOFError, KeyboardInterrupt):
                say("\nwalkthrough ended")
                return 0
        started = time.monotonic()
        try:
            lines = step.run(demo)
        except (StepFailed, ApiError, StoreError) as exc:
            say(f"  FAILED: {exc}", RED)
            if not demo.interactive:
                say(json.dumps({"failed_step": number, "figures": demo.figures}))
                return 1
            continue
        for line in lines:
            say(f"  {line}", GREEN)
        if not demo.interactive:
            say(f"  ok ({time.monotonic() - started:.2f} s)", DIM)
    say()
    say("figures: " + json.dumps(demo.figures), BOLD)
    if demo.interactive:
        say("That is the whole story. './demo.sh stop' ends the demo.")
        with contextlib.suppress(EOFError, KeyboardInterrupt):
            input()
    return 0


def run() -> int:
    """``main`` with ctrl+c as a way out: one line, no traceback, exit code 130."""
    try:
        return main()
    except KeyboardInterrupt:
        say("\ninterrupted (ctrl+c)")
        return 130


if __name__ == "__main__":
    sys.exit(run())
