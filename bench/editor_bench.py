"""Benchmark the hanotepad editor in a real pty; prints ONE JSON object.

    .venv/bin/python bench/editor_bench.py [--quick]

Figures:
- startup_to_first_screen_s: process spawn to first full screen (status bar and footer
  drawn), median of 10; and the same for a bare Textual app with a TextArea (baseline).
- keystroke_to_disk_s: from writing a chunk of typing to the pty until the file on disk
  holds it: while a fast typist types (1-4 keys every 20-60 ms), in bursts (words every
  5-40 ms), and for isolated keystrokes.
- load_average_1min: before and after; the machine is shared, and figures taken under
  load say more about the neighbours than about the editor.
- open_10mb_to_first_screen_s: spawn with a 10 MB file to the screen showing its first
  line, median of 5.
- typing_in_10mb_file_s: in that 10 MB file, keystroke to screen, and keystroke to disk.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import select
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import figures  # bench/figures.py, beside this script
import ptyprocess
import pyte

ROWS, COLUMNS = 24, 80
CTRL_END = "\x1b[1;5F"


BARE_TEXTUAL_APP = """
from textual.app import App
from textual.widgets import Footer, Label, TextArea

class Bare(App):
    def compose(self):
        yield TextArea()
        yield Label("Ln 1, Col 1")
        yield Footer()

Bare().run()
"""
"""The baseline: a minimal Textual app with a TextArea, to tell the editor's start-up
cost from Python's and Textual's on a machine as loaded as it is right now."""


class Editor:
    """hanotepad in a pty (or another program: ``argv``), its screen mirrored by pyte."""

    def __init__(self, path: Path, state: Path, argv: list[str] | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TEXTUAL", "XDG_"))}
        env.update(TERM="xterm-256color", XDG_STATE_HOME=str(state))
        self.started = time.monotonic()
        self.proc = ptyprocess.PtyProcess.spawn(
            argv or [sys.executable, "-m", "hanotepad", str(path)],
            env=env,
            dimensions=(ROWS, COLUMNS),
        )
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while not self.stop.is_set():
            try:
                if not select.select([self.proc.fd], [], [], 0.05)[0]:
                    continue
                data = os.read(self.proc.fd, 65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.stream.feed(data)

    def display(self) -> str:
        with self.lock:
            return "\n".join(self.screen.display)

    def wait(self, predicate: Callable[[str], bool], timeout: float = 20.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.display()):
                return time.monotonic()
            time.sleep(0.002)
        raise TimeoutError(f"screen never matched; last screen:\n{self.display()}")

    def wait_ready(self) -> float:
        return self.wait(lambda screen: "Ln " in screen and "palette" in screen)

    def type(self, text: str) -> float:
        self.proc.write(text.encode())
        return time.monotonic()

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.stop.set()
        self.reader.join(timeout=2)
        with contextlib.suppress(Exception):  # already closed
            self.proc.close(force=True)


class DiskWatcher:
    """Polls a file's size every millisecond and records when each size first appeared."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.history: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        last = -1
        while not self.stop.is_set():
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = -1
            if size != last:
                self.history.append((time.monotonic(), size))
                last = size
            time.sleep(0.001)

    def first_time_at_least(self, size: int, after: float) -> float | None:
        for seen_at, seen_size in self.history:
            if seen_at >= after and seen_size >= size:
                return seen_at
        return None

    def close(self) -> None:
        self.stop.set()
        self.thread.join()




def summary(values: list[float]) -> dict[str, float | int]:
    return figures.summary(values, digits=4)


def bench_startup(work: Path, runs: int) -> dict[str, dict[str, float | int]]:
    """Alternate the editor and the bare Textual app, so both see the same load."""
    editor_times, bare_times = [], []
    for run in range(runs):
        path = work / f"start{run}.txt"
        path.write_text("hello\n")
        for argv, times in (
            (None, editor_times),
            ([sys.executable, "-c", BARE_TEXTUAL_APP], bare_times),
        ):
            editor = Editor(path, work / "state-start", argv)
            try:
                times.append(editor.wait_ready() - editor.started)
            finally:
                editor.close()
    return {
        "hanotepad": summary(editor_times),
        "bare_textual_app": summary(bare_times),
    }


TYPIST = (1, 4, 0.02, 0.06)
"""Keys per chunk and pause between chunks: a fast typist, about 50 characters a second."""
BURST = (2, 8, 0.005, 0.04)
"""Whole words every few ms, about 200 characters a second: a stress pattern."""


def type_and_measure(
    editor: Editor,
    watcher: DiskWatcher,
    typed: int,
    seconds: float,
    pattern: tuple[int, int, float, float],
    rng: random.Random,
) -> tuple[list[float], int]:
    """Type for ``seconds``; return each chunk's write-to-disk latency, and the new size."""
    fewest, most, shortest, longest = pattern
    samples: list[tuple[float, int]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        chunk = "".join(rng.choices("abcdefghijklmnop ", k=rng.randint(fewest, most)))
        typed += len(chunk)
        samples.append((editor.type(chunk), typed))
        time.sleep(rng.uniform(shortest, longest))
    deadline = time.monotonic() + 10
    while watcher.first_time_at_least(typed, 0) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    latencies = []
    for written_at, size in samples:
        seen = watcher.first_time_at_least(size, written_at)
        if seen is None:
            raise TimeoutError("typed text never reached the disk")
        latencies.append(seen - written_at)
    return latencies, typed


def bench_typing(work: Path, seconds: float, isolated: int) -> dict[str, dict[str, float | int]]:
    path = work / "typing.txt"
    editor = Editor(path, work / "state-typing")
    rng = random.Random(1)
    try:
        editor.wait_ready()
        watcher = DiskWatcher(path)
        typist, typed = type_and_measure(editor, watcher, 0, seconds, TYPIST, rng)
        burst, typed = type_and_measure(editor, watcher, typed, seconds, BURST, rng)
        single = []
        for _ in range(isolated):
            time.sleep(rng.uniform(0.25, 0.4))  # let the editor go idle between keystrokes
            typed += 1
            written_at = editor.type("x")
            deadline = written_at + 5
            while (seen := watcher.first_time_at_least(typed, written_at)) is None:
                if time.monotonic() > deadline:
                    raise TimeoutError("keystroke never reached the disk")
                time.sleep(0.001)
            single.append(seen - written_at)
        watcher.close()
    finally:
        editor.close()
    return {
        "typist_50cps": summary(typist),
        "burst_200cps": summary(burst),
        "isolated_keystroke": summary(single),
    }


def make_big_file(path: Path, size: int) -> str:
    rng = random.Random(2)
    lines = []
    total = 0
    while total < size:
        words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9)))
                 for _ in range(rng.randint(3, 14))]
        line = " ".join(words)
        lines.append(line)
        total += len(line) + 1
    path.write_text("\n".join(lines) + "\n")
    return lines[0]


def bench_big_file(work: Path, runs: int, keys: int) -> tuple[dict, dict]:
    path = work / "big.txt"
    first_line = make_big_file(path, 10_000_000)
    opens = []
    for _ in range(runs):
        editor = Editor(path, work / "state-big-open")
        try:
            shown = editor.wait(lambda screen: first_line[:40] in screen and "palette" in screen)
            opens.append(shown - editor.started)
        finally:
            editor.close()
    editor = Editor(path, work / "state-big-type")
    to_screen, to_disk = [], []
    try:
        editor.wait(lambda screen: first_line[:40] in screen and "palette" in screen)
        watcher = DiskWatcher(path)
        size = path.stat().st_size
        for number in range(keys):
            marker = f"Q{number:03d}Z"
            written_at = editor.type(marker)
            size += len(marker)
            to_screen.append(editor.wait(lambda screen, m=marker: m in screen) - written_at)
            deadline = written_at + 10
            while (seen := watcher.first_time_at_least(size, written_at)) is None:
                if time.monotonic() > deadline:
                    raise TimeoutError("big-file keystroke never reached the disk")
                time.sleep(0.001)
            to_disk.append(seen - written_at)
        watcher.close()
    finally:
        editor.close()
    return summary(opens), {"to_screen": summary(to_screen), "to_disk": summary(to_disk)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke test)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hanotepad-bench-") as directory:
        work = Path(directory)
        startup = bench_startup(work, 3 if args.quick else 10)
        typing = bench_typing(work, 2.0 if args.quick else 10.0, 5 if args.quick else 50)
        open_big, typing_big = bench_big_file(work, 2 if args.quick else 5, 3 if args.quick else 20)
    print(json.dumps({
        "bench": "hanotepad",
        "cpu_count": os.cpu_count(),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "startup_to_first_screen_s": startup,
        "keystroke_to_disk_s": typing,
        "open_10mb_to_first_screen_s": open_big,
        "typing_in_10mb_file_s": typing_big,
    }))


if __name__ == "__main__":
    main()
