"""The acceptance story in a real terminal: 3 nodes, ``hacluster notepad``, ``hacluster attach``,
type, SIGKILL the owner's whole process tree, and the same terminal shows the editor again with
the text and the cursor where they were; type more; a planned move back; the text is intact.

The terminal is a pty read by pyte (tests/helpers/terminal.py); the nodes are real processes
(tests/integration/harness.py). Everything is killed at teardown, pass or fail.
"""

from __future__ import annotations

import os

import pytest

from tests.e2e.notepad import (
    DETACH,
    GROUP,
    app_pid,
    attach_argv,
    attach_json,
    create_notepad,
    notes_path,
    on_disk,
    owner,
    wait_cursor,
    wait_editor,
    wait_safe,
)
from tests.helpers.procs import pid_alive
from tests.helpers.wait import wait_until
from tests.integration.harness import Cluster, hacluster

NODES = ("node1", "node2", "node3")
SOAK_REPETITIONS = 10 if os.environ.get("HA_SOAK") else 2


def crash_owner(cluster: Cluster) -> str:
    """SIGKILL the owner node's whole process tree; returns its name."""
    victim = owner(cluster)
    pid = app_pid(cluster)
    cluster.kill_node(victim)
    assert not pid_alive(pid), "the editor outlived its node"
    return victim


def test_crash_of_the_owner_keeps_text_and_cursor_then_a_planned_move_back(
        cluster: Cluster, terminals) -> None:
    cluster.start_nodes(*NODES)
    create_notepad(cluster)
    cluster.wait_online(GROUP)
    first_owner = owner(cluster)
    term = terminals(attach_argv(cluster, GROUP, "--json"))
    wait_editor(term, "Ln 1, Col 1", (1, 1))

    term.send("hello from node1")
    wait_editor(term, "hello from node1", (1, 17))
    wait_safe(cluster, "hello from node1", (0, 16))
    cursor_before = (0, term.line(0).index("hello from node1") + 16)  # just past the text
    wait_cursor(term, cursor_before)

    mark = len(term.raw())
    crash_owner(cluster)
    term.wait_for_text("failing over", timeout=5)
    wait_until(lambda: owner(cluster) != first_owner, timeout=15, message="a new owner")
    second_owner = owner(cluster)
    # The banner is on screen only until the editor repaints that row: look at what was written.
    term.wait_for_raw(f"back on {second_owner}".encode(), since=mark, timeout=15)
    wait_editor(term, "hello from node1", (1, 17))
    wait_cursor(term, cursor_before)

    # Typing lands where the cursor is: at the end of the line.
    term.send(" and more")
    wait_editor(term, "hello from node1 and more", (1, 26))

    # The crashed node comes back; a planned move returns the group to it, without waiting
    # for the autosave: a graceful stop must save and checkpoint on its own.
    cluster.start_node(first_owner)
    mark = len(term.raw())
    hacluster(cluster.store, "group", "move", GROUP, "--to", first_owner, "--wait", "30")
    term.wait_for_raw(f"back on {first_owner}".encode(), since=mark, timeout=15)
    wait_editor(term, "hello from node1 and more", (1, 26))
    assert on_disk(notes_path(cluster)) == "hello from node1 and more"
    term.send(" again")  # reaches the editor on first_owner: the one on second_owner is gone
    wait_editor(term, "hello from node1 and more again", (1, 32))
    wait_safe(cluster, "hello from node1 and more again", (0, 31))

    term.send(DETACH)
    assert term.wait_exit(10) == 0
    outages = attach_json(term)["outages"]
    assert [(o["from"], o["to"]) for o in outages] == [(first_owner, second_owner),
                                                       (second_owner, first_owner)]
    assert all(o["duration"] > 0 for o in outages)
    assert on_disk(notes_path(cluster)) == "hello from node1 and more again"


@pytest.mark.slow
def test_soak_repeated_crashes_never_lose_saved_text_or_the_cursor(cluster: Cluster,
                                                                   terminals) -> None:
    """The crash story again and again (HA_SOAK=1: 10 times): each round kills whoever owns
    the editor, checks the screen, types a word and brings the dead node back."""
    cluster.start_nodes(*NODES)
    create_notepad(cluster)
    cluster.wait_online(GROUP)
    term = terminals(attach_argv(cluster, GROUP, "--json"))
    wait_editor(term, "Ln 1, Col 1", (1, 1))
    text = "soak"
    term.send(text)
    for round_number in range(1, SOAK_REPETITIONS + 1):
        wait_editor(term, text, (1, len(text) + 1))
        wait_safe(cluster, text, (0, len(text)))
        cursor_before = (0, term.line(0).index(text) + len(text))
        wait_cursor(term, cursor_before)
        mark = len(term.raw())
        victim = crash_owner(cluster)
        wait_until(lambda v=victim: owner(cluster) != v, timeout=15,
                   message=f"round {round_number}: a new owner")
        term.wait_for_raw(f"back on {owner(cluster)}".encode(), since=mark, timeout=15)
        wait_editor(term, text, (1, len(text) + 1))
        wait_cursor(term, cursor_before)
        word = f" r{round_number}"
        term.send(word)
        text += word
        cluster.start_node(victim)
    wait_editor(term, text, (1, len(text) + 1))
    wait_safe(cluster, text, (0, len(text)))
    term.send(DETACH)
    assert term.wait_exit(10) == 0
    outages = attach_json(term)["outages"]
    assert len(outages) == SOAK_REPETITIONS
    assert all(o["duration"] is not None and o["from"] != o["to"] for o in outages)
