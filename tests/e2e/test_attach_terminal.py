"""``hacluster attach`` gives the terminal back as it found it, whichever way it leaves.

Each test runs attach inside a pty under ``sh -c 'stty -g > before; attach ...; echo $? > rc;
stty -g > after'`` and compares the two ``stty -g`` lines, after checking that attach really
did switch the terminal to raw mode while it ran (so the comparison can fail).
"""

from __future__ import annotations

import os
import secrets
import signal
import termios
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.e2e.notepad import (
    DETACH,
    GROUP,
    attach_argv,
    create_notepad,
    wait_editor,
    wait_ready,
)
from tests.helpers.terminal import Terminal
from tests.helpers.wait import wait_until
from tests.integration.harness import Cluster

STTY_WRAPPER = 'stty -g > "$0/before"; "$@"; echo $? > "$0/rc"; stty -g > "$0/after"'


class Session:
    """attach under the stty wrapper, in a terminal."""

    def __init__(self, term: Terminal, workdir: Path) -> None:
        self.term = term
        self.workdir = workdir

    def attach_process(self) -> psutil.Process:
        def find() -> psutil.Process | None:
            for child in psutil.Process(self.term.proc.pid).children():
                if "attach" in child.cmdline():
                    return child
            return None
        return wait_until(find, message="the attach process")

    def raw_mode(self) -> bool:
        assert self.term.master_fd is not None
        lflag = termios.tcgetattr(self.term.master_fd)[3]
        return not lflag & (termios.ICANON | termios.ECHO | termios.ISIG)

    def wait_raw(self) -> None:
        wait_until(self.raw_mode, message="attach to put the terminal in raw mode")

    def result(self, timeout: float = 15.0) -> int:
        """attach's exit code, once the wrapper has recorded both stty lines; asserts they match."""
        rc_file, after = self.workdir / "rc", self.workdir / "after"
        try:
            wait_until(lambda: after.exists() and after.read_text().strip(), timeout=timeout,
                       message="attach to exit and the wrapper to record the terminal")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.term.text()}") from None
        before = (self.workdir / "before").read_text()
        assert before.strip(), "stty -g recorded nothing before attach"
        assert after.read_text() == before, "attach left the terminal's settings changed"
        assert not self.raw_mode()
        return int(rc_file.read_text())


@pytest.fixture
def session(tmp_path: Path, terminals) -> Callable[..., Session]:
    def start(cluster: Cluster, name: str = GROUP) -> Session:
        workdir = tmp_path / "tty"
        workdir.mkdir()
        term = terminals(["sh", "-c", STTY_WRAPPER, str(workdir), *attach_argv(cluster, name)])
        return Session(term, workdir)
    return start


def start_notepad(cluster: Cluster) -> Cluster:
    cluster.start_nodes("node1")
    create_notepad(cluster)
    cluster.wait_online(GROUP)
    return cluster


@pytest.fixture
def online(notepad_cluster: Cluster) -> Cluster:
    """The shared one-node cluster (conftest.py): every way out but a crash leaves it online."""
    notepad_cluster.wait_online(GROUP)
    return notepad_cluster


@pytest.fixture
def crashable(cluster: Cluster) -> Cluster:
    """A cluster of its own, for a test that kills its only node."""
    return start_notepad(cluster)


def test_ctrl_bracket_detaches_and_restores_the_terminal(online: Cluster, session) -> None:
    s = session(online)
    wait_ready(s.term)
    s.wait_raw()
    s.term.send(DETACH)
    assert s.result() == 0
    assert online.group(GROUP)["state"] == "online", "detaching must leave the app running"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_to_attach_restores_the_terminal(online: Cluster, session,
                                                  sig: signal.Signals) -> None:
    s = session(online)
    wait_ready(s.term)
    s.wait_raw()
    os.kill(s.attach_process().pid, sig)
    assert s.result() == 0
    assert online.group(GROUP)["state"] == "online"


# The first phase of waiting (the dead owner's lease still valid, its console refusing
# connections) lasts up to a lease TTL: a longer lease leaves time to act in it.
@pytest.mark.parametrize(("cluster", "banner"), [(4.0, "waiting for its lease"),
                                                 (2.0, "waiting for a new owner")],
                         indirect=["cluster"], ids=["lease-still-valid", "no-owner"])
def test_detach_while_waiting_out_an_outage(crashable: Cluster, session, banner: str) -> None:
    """The only node crashes: attach waits for a new owner (first while the dead node's lease
    runs out, then with no owner at all); ctrl+] leaves at once in both phases."""
    s = session(crashable)
    wait_ready(s.term)
    crashable.kill_node("node1")
    s.term.wait_for_text(banner, timeout=10)
    s.term.send(DETACH)
    assert s.result(timeout=3) == 0


def test_an_unknown_name_exits_2_with_a_message(online: Cluster, session) -> None:
    s = session(online, "no-such-group")
    assert s.result() == 2
    s.term.wait_for_text("unknown group or resource 'no-such-group'")
    assert "list them with 'hacluster status'" in "".join(s.term.lines())


def test_a_wrong_secret_exits_1_with_a_message(online: Cluster, session) -> None:
    """The node started with one secret; the store's copy changed before attaching (as if
    attach ran against another cluster's store): the console host refuses it."""
    secret_file = online.store / "secret"
    right = secret_file.read_text()
    secret_file.write_text(secrets.token_hex(32) + "\n")
    try:
        s = session(online)
        assert s.result() == 1
        s.term.wait_for_text("authentication failed: wrong cluster secret")
    finally:
        secret_file.write_text(right)
    assert online.group(GROUP)["state"] == "online"


def test_the_app_exiting_then_restarting_and_detach(online: Cluster, session) -> None:
    """The editor quits (ctrl+q): attach says so and waits; the cluster restarts the app (it is
    a failure of a generic app) and attach shows it again; ctrl+] then leaves cleanly."""
    s = session(online)
    line, column = wait_ready(s.term)
    s.term.send("bye")
    position = (line, column + 3)
    wait_editor(s.term, "bye", position)
    mark = len(s.term.raw())
    s.term.send(b"\x11")  # ctrl+q: the editor saves and quits
    s.term.wait_for_raw(b"back on node1", since=mark, timeout=15)
    wait_editor(s.term, "bye", position)
    s.term.send(DETACH)
    assert s.result() == 0


def test_closing_the_terminal_ends_attach_cleanly(online: Cluster, terminals,
                                                  tmp_path: Path) -> None:
    """Hang-up (the window closed): attach must leave quietly, not spin on a dead terminal or
    die with a traceback trying to restore a terminal that no longer exists."""
    stderr = tmp_path / "stderr"
    term = terminals(["sh", "-c", 'exec "$@" 2>"$0"', str(stderr), *attach_argv(online)])
    wait_ready(term)
    term.hang_up()
    assert term.wait_exit(10) == 0
    assert "Traceback" not in stderr.read_text(), stderr.read_text()
    assert online.group(GROUP)["state"] == "online"
