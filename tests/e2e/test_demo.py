"""End-to-end tests of ``./demo.sh`` as a presenter uses it: the tmux walkthrough driven with
``tmux send-keys`` and read with ``tmux capture-pane``, the unattended ``--auto`` run, ``stop``
(checked with ps), ``reset``, bad arguments and a machine without tmux.

The tmux session name is fixed ("hanotepad-demo"), so every test here runs its own tmux server
(``TMUX_TMPDIR`` in a private directory, ``TMUX`` unset): a presenter's real session, another
engineer's run and these tests never see each other. The tests that start a demo also take a
machine-wide file lock and share one xdist group, so they run one at a time (2 cores). At
teardown, pass or fail, the private tmux server is killed, then every process whose command
line names the test's demo directory (whole trees), as ``./demo.sh stop`` would.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from cluster.console.attach import find_console
from shared_store import open_store
from tests.helpers.procs import ProcessTracker
from tests.helpers.terminal import Terminal
from tests.helpers.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo.sh"
SESSION = "hanotepad-demo"
NODES = ("node1", "node2", "node3")
LOCK = Path(tempfile.gettempdir()) / "hanotepad-demo-tests.lock"
TYPED = "typed in the attach pane"
MORE = " and after the crash"
# Every figure the story measures; the issue asks for failover, restart and move times.
FIGURES = {"planned_move", "local_restart", "failover", "rejoin", "drain"}
STEP_TIMEOUT = 60.0  # generous, to catch hangs only: a step takes about 0.5-2 s

pytestmark = pytest.mark.xdist_group("demo-sh")


# --- processes and the environment ----------------------------------------------------------


def names_dir(cmdline: list[str], root: Path) -> bool:
    return any(part == str(root) or f"{root}/" in part for part in cmdline)


def demo_processes(root: Path) -> list[str]:
    """``ps`` lines of live processes whose command line names ``root``: what a person
    checking with ps after ``./demo.sh stop`` would look for."""
    ps = subprocess.run(["ps", "-ww", "-eo", "pid=,stat=,args="], capture_output=True, text=True,
                        check=True)
    found = []
    for line in ps.stdout.splitlines():
        pid, stat, args = (line.split(None, 2) + ["", ""])[:3]
        if int(pid) != os.getpid() and not stat.startswith("Z") and (
                str(root) + "/" in args or args.endswith(str(root))
                or f"{root} " in args):
            found.append(line.strip())
    return found


def kill_demo(root: Path) -> None:
    """Kill every process tree whose command line names ``root`` and wait until gone."""
    with ProcessTracker() as tracker:
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if names_dir(proc.info["cmdline"] or [], root):
                    tracker.track_tree(proc.pid)


@contextlib.contextmanager
def demo_lock(timeout: float = 100.0) -> Iterator[None]:
    """One demo at a time on this machine (tests of several checkouts, several workers)."""
    with LOCK.open("a") as handle:
        def acquired() -> bool:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True
        wait_until(acquired, timeout=timeout, interval=0.1, message=f"the lock {LOCK}")
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def base_env(tmux_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    env.update(TMUX_TMPDIR=str(tmux_dir), DEMO_NO_ATTACH="1")
    return env


def demo_sh(*args: str, env: dict[str, str], timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DEMO), *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def demo_dir(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "demo"
    try:
        yield root
    finally:
        kill_demo(root)


@pytest.fixture
def env(demo_dir: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """A private tmux server (short socket path: tmux limits it to ~100 characters), under
    the machine-wide demo lock. Teardown kills the server, then the demo's processes."""
    with demo_lock():
        tmux_dir = Path(tempfile.mkdtemp(prefix="hnd-", dir="/tmp"))
        environment = base_env(tmux_dir)
        try:
            yield environment
        finally:
            report = getattr(request.node, "rep_call", None)
            if report is not None and report.failed:
                for n in range(6):
                    if shown := capture(environment, n):
                        print(f"--- pane {n}\n{shown}")
            subprocess.run(["tmux", "kill-server"], env=environment, capture_output=True)
            kill_demo(demo_dir)
            shutil.rmtree(tmux_dir, ignore_errors=True)


# --- tmux as a person uses it ---------------------------------------------------------------


def tmux(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, env=env, timeout=10)


def capture(env: dict[str, str], pane: int) -> str:
    """What pane ``pane`` shows, wrapped lines joined, with its scrollback."""
    return tmux(env, "capture-pane", "-p", "-J", "-S", "-", "-t", f"{SESSION}:0.{pane}").stdout


def wait_pane(env: dict[str, str], pane: int, pattern: str | Callable[[str], object],
              timeout: float = STEP_TIMEOUT) -> str:
    test = pattern if callable(pattern) else (lambda text: pattern in text)

    def shown() -> str | None:
        text = capture(env, pane)
        return text if test(text) else None
    try:
        return wait_until(shown, timeout=timeout, interval=0.05,
                          message=f"{pattern!r} in pane {pane}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- pane {pane} ---\n{capture(env, pane)}") from None


def narrate(env: dict[str, str], number: int, total: int = 8) -> str:
    """Press Enter at step ``number``'s prompt and return what the narrator said for it."""
    header = f"Step {number} of {total}:"
    wait_pane(env, 0, lambda t: header in t and "press Enter" in t.split(header, 1)[1])
    tmux(env, "send-keys", "-t", f"{SESSION}:0.0", "Enter")
    end = f"Step {number + 1} of {total}:" if number < total else "figures:"
    text = wait_pane(env, 0, end)
    said = text.split(header, 1)[1].split(end, 1)[0]
    assert "FAILED" not in said, said
    return said


def attach_connected(env: dict[str, str], store: Path, node: str) -> bool:
    """Whether the attach pane's ``hacluster attach`` holds a connection to the console that
    ``node`` publishes now: keys typed from then on reach the editor there. (Its banner says
    so too, but the editor's next repaint may cover it before a capture sees it.)"""
    endpoint = find_console(open_store(store), "notepad")
    if endpoint is None or endpoint.node != node:
        return False
    shell = int(tmux(env, "display-message", "-p", "-t", f"{SESSION}:0.2",
                     "#{pane_pid}").stdout)
    with contextlib.suppress(psutil.Error):
        for proc in psutil.Process(shell).children(recursive=True):
            if "attach" in proc.cmdline():
                return any(c.raddr and c.raddr.port == endpoint.port
                           and c.status == psutil.CONN_ESTABLISHED
                           for c in proc.net_connections("tcp"))
    return False


# --- the tests ------------------------------------------------------------------------------


def test_walkthrough_in_tmux_every_step_then_stop(demo_dir: Path, env: dict[str, str]) -> None:
    started = demo_sh("--dir", str(demo_dir), env=env)
    assert started.returncode == 0, started.stderr
    assert f"tmux session '{SESSION}' is ready" in started.stdout
    assert "notepad is online on node1" in started.stdout

    panes = tmux(env, "list-panes", "-t", SESSION, "-F", "#{pane_index}").stdout.split()
    assert panes == ["0", "1", "2", "3", "4", "5"]
    assert tmux(env, "show-options", "-v", "-t", SESSION, "@hanotepad_dir").stdout.strip() \
        == str(demo_dir)
    wait_pane(env, 0, "press Enter to show the nodes")
    wait_pane(env, 1, "notepad")  # the live status (the admin dashboard)
    wait_pane(env, 2, "Ln 1, Col 1")  # the editor, attached
    for pane, node in enumerate(NODES, 3):
        wait_pane(env, pane, f"joined cluster demo as {node}")

    said = narrate(env, 1)
    for node in NODES:
        assert re.search(rf"{node}: up, lease epoch \d+, node service pid \d+, "
                         r"resource monitor pid \d+", said), said

    said = narrate(env, 2)
    assert "group notepad runs on node1 (online), failback never" in said
    assert "notepad-app (generic-app), depends on notepad-disk, notepad-name" in said

    # Step 3 as a presenter does it: type into the attach pane, see it there, then Enter.
    tmux(env, "send-keys", "-t", f"{SESSION}:0.2", "-l", TYPED)
    wait_pane(env, 2, TYPED)
    said = narrate(env, 3)
    assert f"notes.txt has {TYPED!r}" in said, said

    said = narrate(env, 4)
    assert re.search(r"moved notepad from node1 to node2 in [\d.]+ s", said), said
    assert "the text is intact" in said

    said = narrate(env, 5)
    assert re.search(r"notepad-app failed on node2 and was restarted there in [\d.]+ s "
                     r"\(pid (\d+) -> (\d+)", said), said

    said = narrate(env, 6)
    crash = re.search(r"(node\d) crashed \(SIGKILL of its whole process tree\); notepad came "
                      r"online on (node\d) after [\d.]+ s", said)
    assert crash and crash[1] != crash[2], said
    assert "the text is intact" in said
    # The attach pane followed the editor to the survivor: the text is on screen, and what
    # is typed now reaches the editor there and its file on the shared store.
    wait_until(lambda: attach_connected(env, demo_dir / "store", crash[2]), timeout=30,
               message=f"the attach pane's connection to the console on {crash[2]}")
    wait_pane(env, 2, lambda t: TYPED in t and "Ln 1, Col" in t)
    tmux(env, "send-keys", "-t", f"{SESSION}:0.2", "-l", MORE)
    wait_pane(env, 2, TYPED + MORE)
    notes = demo_dir / "store" / "data" / "notepad" / "notes.txt"
    wait_until(lambda: TYPED + MORE in notes.read_text(), timeout=10,
               message="the text typed after the crash in notes.txt")

    said = narrate(env, 7)
    assert re.search(rf"{crash[1]} rejoined in [\d.]+ s \(lease epoch (\d+) -> (\d+)\); "
                     rf"failback is 'never' \(the MSCS default\), so notepad stays on "
                     rf"{crash[2]}", said), said
    epochs = re.search(r"lease epoch (\d+) -> (\d+)", said)
    assert epochs and int(epochs[2]) > int(epochs[1])
    wait_pane(env, 3 + NODES.index(crash[1]), lambda t: t.count(
        f"joined cluster demo as {crash[1]}") == 2)

    said = narrate(env, 8)
    assert re.search(rf"paused {crash[2]}: notepad drained to node\d in [\d.]+ s", said), said
    figures = re.search(r"figures: (\{.*\})", capture(env, 0))
    assert figures and set(json.loads(figures[1])) >= FIGURES, capture(env, 0)

    running = demo_processes(demo_dir)
    assert len(running) >= 3 + 3 + 1, running  # nodes, tails, the editor at the least
    stopped = demo_sh("stop", "--dir", str(demo_dir), env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == "demo.sh: stopped"
    assert demo_processes(demo_dir) == []
    assert tmux(env, "has-session", "-t", SESSION).returncode != 0
    assert not (demo_dir / "pids").exists()
    assert (demo_dir / "store").is_dir()  # stop keeps the cluster; reset removes it


def test_another_demos_tmux_session_is_left_alone(demo_dir: Path, env: dict[str, str],
                                                  tmp_path: Path) -> None:
    """The session name is fixed: a demo in another directory neither takes it over nor
    stops it; it says which directory to stop first."""
    other = tmp_path / "other-demo"
    assert tmux(env, "new-session", "-d", "-s", SESSION, "sleep 600").returncode == 0
    assert tmux(env, "set-option", "-t", f"={SESSION}:", "@hanotepad_dir",
                str(other)).returncode == 0
    started = demo_sh("--dir", str(demo_dir), env=env)
    assert started.returncode == 2
    assert started.stderr == (f"demo.sh: the tmux session '{SESSION}' shows the demo in "
                              f"{other}; stop it first: ./demo.sh stop --dir {other}\n")
    assert not (demo_dir / "store").exists()  # refused before starting anything
    stopped = demo_sh("stop", "--dir", str(demo_dir), env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert tmux(env, "has-session", "-t", f"={SESSION}").returncode == 0
    assert demo_sh("stop", "--dir", str(other), env=env).returncode == 0
    assert tmux(env, "has-session", "-t", f"={SESSION}").returncode != 0


def test_auto_runs_the_story_and_prints_the_figures(demo_dir: Path,
                                                     env: dict[str, str]) -> None:
    run = demo_sh("--auto", "--dir", str(demo_dir), env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    for number in range(1, 9):
        assert f"Step {number} of 8:" in out
    assert len(re.findall(r"^  ok \([\d.]+ s\)$", out, re.M)) == 8, out
    assert "FAILED" not in out
    assert "notes.txt on the shared store has 'hello from the demo'" in out
    figures = json.loads(re.search(r"^figures: (\{.*\})$", out, re.M)[1])
    assert FIGURES | {"autosave"} <= set(figures)
    assert all(0 < value < STEP_TIMEOUT for value in figures.values()), figures
    assert demo_processes(demo_dir) == []  # --auto stops what it started


def test_auto_interrupted_by_ctrl_c_leaves_nothing_running(demo_dir: Path,
                                                            env: dict[str, str]) -> None:
    """ctrl+c in the terminal: SIGINT to the foreground process group (demo.sh and the
    narrator; the nodes run in sessions of their own and would survive it)."""
    proc = subprocess.Popen([str(DEMO), "--auto", "--dir", str(demo_dir)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    lines: list[str] = []
    try:
        def story_started() -> bool:
            line = proc.stdout.readline() if proc.stdout else ""
            lines.append(line)
            return "Step 2 of 8" in line or proc.poll() is not None
        wait_until(story_started, timeout=STEP_TIMEOUT, interval=0,
                   message="the narrator's second step")
        assert proc.poll() is None, "".join(lines)
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=STEP_TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 130, "".join(lines) + rest
    assert "interrupted (ctrl+c)" in rest and "Traceback" not in rest, rest
    assert demo_processes(demo_dir) == []


def test_auto_exits_1_and_names_the_step_when_a_step_fails(tmp_path: Path) -> None:
    """The narrator on a cluster with no node up: step 1 fails, the run stops with 1."""
    store = tmp_path / "store"
    init = subprocess.run([sys.executable, "-m", "cluster", "init", "--store", str(store)],
                          capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    run = subprocess.run([sys.executable, "-m", "cluster.demo", "--store", str(store),
                          "--dir", str(tmp_path), "--auto"], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "  FAILED: fewer than 3 nodes are up" in run.stdout
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {"failed_step": 1, "figures": {}}
    assert "Step 2 of 8" not in run.stdout


def test_without_tmux_prints_the_commands_and_they_work(
        demo_dir: Path, env: dict[str, str], tmp_path: Path,
        terminals: Callable[..., Terminal]) -> None:
    """PATH holds everything but tmux: the demo starts and prints the panes as commands;
    the printed attach and status commands work; reset then stops it all and removes it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                target = bin_dir / entry.name
                if entry.name != "tmux" and not target.exists() and os.access(entry.path,
                                                                             os.X_OK):
                    target.symlink_to(entry.path)
    no_tmux = {**env, "PATH": str(bin_dir)}
    assert shutil.which("tmux", path=str(bin_dir)) is None

    run = demo_sh("--dir", str(demo_dir), env=no_tmux)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "tmux is not installed" in out
    assert "sudo apt-get install tmux" in out and "brew install tmux" in out
    commands = dict(re.findall(r"^  (narrator|attach|status|node logs): +(.+?)(?:   \(.*)?$",
                               out, re.M))
    assert set(commands) == {"narrator", "attach", "status", "node logs"}, out
    assert commands["narrator"].endswith(f"-m cluster.demo --store {demo_dir}/store "
                                         f"--dir {demo_dir}")
    assert commands["node logs"] == f"tail -F {demo_dir}/node1/node.log"
    assert (demo_dir / "node1" / "node.log").exists()
    assert "'./demo.sh stop' ends the demo." in out

    attach = terminals(commands["attach"].split(), rows=24, cols=100)
    attach.wait_for_text("Ln 1, Col 1", timeout=STEP_TIMEOUT)
    status = terminals(commands["status"].split(), rows=24, cols=120)
    screen = status.wait_for_text("notepad-app", timeout=STEP_TIMEOUT)
    assert re.search(r"group\W+notepad\W+online\W+node1", screen), screen
    attach.close()
    status.close()

    reset = demo_sh("reset", "--dir", str(demo_dir), env=no_tmux)
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout.strip() == f"demo.sh: removed {demo_dir}"
    assert not demo_dir.exists()
    assert demo_processes(demo_dir) == []


def test_reset_removes_a_stopped_demo_dir(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    (root / "store").mkdir(parents=True)
    (root / "store" / "cluster.json").write_text("{}")
    (root / "node1").mkdir()
    run = demo_sh("reset", "--dir", str(root), env=base_env(tmp_path))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"demo.sh: removed {root}"
    assert not root.exists()


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "demo.sh: unknown argument '--bogus'; try './demo.sh --help'"),
    (["stpo"], "demo.sh: unknown argument 'stpo'; try './demo.sh --help'"),
    (["--auto", "--dir"], "demo.sh: --dir needs a directory"),
])
def test_bad_argument_exits_2_with_one_line(tmp_path: Path, args: list[str],
                                            message: str) -> None:
    run = demo_sh(*args, env=base_env(tmp_path))
    assert run.returncode == 2
    assert run.stderr == message + "\n"
    assert run.stdout == ""


@pytest.mark.parametrize("command", [[], ["reset"], ["stop"], ["--auto"]])
def test_a_directory_that_is_not_a_demo_is_left_alone(tmp_path: Path,
                                                       command: list[str]) -> None:
    """A typo such as ``--dir ~``: no process killed, nothing deleted, one line, exit 2."""
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    run = demo_sh(*command, "--dir", str(precious), env=base_env(tmp_path))
    assert run.returncode == 2
    assert run.stderr == (f"demo.sh: {precious} is not a demo directory and not empty; pass a "
                          "new or empty one with --dir\n")
    assert (precious / "thesis.txt").read_text() == "years of work"
    assert sorted(p.name for p in precious.iterdir()) == ["thesis.txt"]


def test_help_lists_the_commands(tmp_path: Path) -> None:
    run = demo_sh("--help", env=base_env(tmp_path))
    assert run.returncode == 0
    for usage in ("./demo.sh --auto", "./demo.sh stop", "./demo.sh reset", "./demo.sh test"):
        assert usage in run.stdout
