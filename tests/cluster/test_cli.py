"""The command-line contract on a real store: shapes, exit codes, and that refused input leaves
the store byte-for-byte unchanged."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cluster.cli import main
from shared_store import acquire_lease, open_store


def run(store: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*args, "--store", str(store)])
    return result.exit_code, result.stdout, result.stderr


def tree_digest(root: Path) -> dict[str, str]:
    """Every file of the store but the event log, by content."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "events" not in p.parts
            and not p.name.startswith(".")}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    code, _, err = run(path, "init", "--name", "demo")
    assert code == 0, err
    s = open_store(path)
    for node in ("node1", "node2"):  # nodes known to the cluster, as if they had joined
        acquire_lease(s, f"status/nodes/{node}", node, 2.0, time.time(), extra={"pid": None})
    s.close()
    assert run(path, "group", "create", "g", "--preferred-owners", "node1,node2")[0] == 0
    assert run(path, "resource", "create", "disk", "--group", "g", "--type", "shared-folder",
               "--prop", "path={data}/g")[0] == 0
    assert run(path, "resource", "create", "app", "--group", "g", "--type", "generic-app",
               "--prop", "command=sleep 100", "--depends-on", "disk")[0] == 0
    assert run(path, "group", "create", "other")[0] == 0
    return path


def test_init_then_status_prints_the_contract_shape(tmp_path: Path) -> None:
    path = tmp_path / "x"
    assert run(path, "init", "--name", "demo")[0] == 0
    code, out, _ = run(path, "status", "--json")
    assert code == 0
    assert json.loads(out) == {"cluster": "demo", "nodes": [], "groups": []}


def test_store_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "env"
    monkeypatch.setenv("HACLUSTER_STORE", str(path))
    assert CliRunner().invoke(main, ["init", "--name", "envc"]).exit_code == 0
    result = CliRunner().invoke(main, ["status", "--json"])
    assert json.loads(result.stdout)["cluster"] == "envc"


def test_status_shows_groups_and_resources_in_dependency_order(store: Path) -> None:
    code, out, _ = run(store, "status", "--json")
    status = json.loads(out)
    group = next(g for g in status["groups"] if g["name"] == "g")
    assert [r["name"] for r in group["resources"]] == ["disk", "app"]
    assert group["owner"] is None and group["state"] == "offline"
    assert {n["name"] for n in status["nodes"]} == {"node1", "node2"}


BAD_INPUT = [
    (["init", "--name", "again"], "already exists"),
    (["group", "create", "g"], "already exists"),
    (["group", "create", "bad name!"], "invalid group name"),
    (["group", "create", "h", "--preferred-owners", "node9"], "unknown node 'node9'"),
    (["group", "create", "h", "--failback", "sometimes"], "invalid failback"),
    (["group", "online", "nope"], "unknown group 'nope'"),
    (["group", "move", "nope"], "unknown group"),
    (["group", "delete", "g"], "still has resources"),
    (["resource", "create", "app", "--group", "g", "--type", "generic-app",
      "--prop", "command=x"], "already exists"),
    (["resource", "create", "r", "--group", "nope", "--type", "generic-app",
      "--prop", "command=x"], "unknown group 'nope'"),
    (["resource", "create", "r", "--group", "g", "--type", "quantum"],
     "unknown resource type 'quantum'"),
    (["resource", "create", "r", "--group", "g", "--type", "generic-app"],
     "'command' is required"),
    (["resource", "create", "r", "--group", "g", "--type", "generic-app",
      "--prop", "command=x", "--depends-on", "ghost"], "unknown resource 'ghost'"),
    (["resource", "create", "r", "--group", "other", "--type", "generic-app",
      "--prop", "command=x", "--depends-on", "disk"], "dependencies stay within one group"),
    (["resource", "create", "r", "--group", "g", "--type", "generic-app",
      "--prop", "novalue"], "KEY=VALUE"),
    (["resource", "create", "g", "--group", "g", "--type", "generic-app",
      "--prop", "command=x"], "already a group name"),
    (["resource", "online", "ghost"], "unknown resource 'ghost'"),
    (["resource", "delete", "disk"], "depend(s) on disk"),
    (["node", "pause", "node9"], "unknown node 'node9'"),
    (["node", "frobnicate", "node1"], "No such command"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=lambda v: " ".join(v)
                         if isinstance(v, list) else None)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(
        store: Path, args: list[str], message: str) -> None:
    before = tree_digest(store)
    code, _, err = run(store, *args)
    assert code == 2, err
    assert message in err
    if "No such command" not in err:
        assert len(err.strip().splitlines()) == 1, err
    assert tree_digest(store) == before


def test_missing_store_exits_2(tmp_path: Path) -> None:
    code, _, err = run(tmp_path / "none", "status")
    assert code == 2 and "hacluster init" in err


def test_corrupt_record_is_named_and_left_alone(store: Path) -> None:
    record = store / "spec" / "groups" / "g.json"
    record.write_text('{"version": 1, "value": {"preferred_owners": ')
    before = tree_digest(store)
    code, _, err = run(store, "group", "online", "g")
    assert code == 2 and "g.json" in err
    assert tree_digest(store) == before


def test_dependency_cycle_is_refused(store: Path) -> None:
    toml = store.parent / "cycle.toml"
    toml.write_text("""
[resources.a]
group = "g"
type = "generic-app"
depends_on = ["b"]
properties = { command = "x" }
[resources.b]
group = "g"
type = "generic-app"
depends_on = ["a"]
properties = { command = "x" }
""")
    before = tree_digest(store)
    code, _, err = run(store, "apply", str(toml))
    assert code == 2 and "dependency cycle" in err
    assert tree_digest(store) == before


@pytest.mark.parametrize(("content", "message"), [
    ("[groups.x\n", "malformed TOML"),
    ("[stuff]\n", "unknown table"),
    ("[groups.x]\ncolour = 'red'\n", "unknown key(s) colour"),
    ("[resources.r]\ngroup = 'g'\n", "needs group and type"),
    ("[resources.r]\ngroup = 'g'\ntype = 'generic-app'\nproperties = { command = 'x' }\n"
     "policy = { restart_threshold = 'many' }\n", "restart_threshold"),
    ("[resources.r]\ngroup = 'g'\ntype = 'shared-folder'\n", "'path'"),
])
def test_apply_bad_toml_is_refused(store: Path, content: str, message: str) -> None:
    toml = store.parent / "bad.toml"
    toml.write_text(content)
    before = tree_digest(store)
    code, _, err = run(store, "apply", str(toml))
    assert code == 2, err
    assert message in err
    assert tree_digest(store) == before


def test_apply_creates_groups_and_resources_together(store: Path) -> None:
    toml = store.parent / "web.toml"
    toml.write_text("""
[groups.web]
preferred_owners = ["node2"]
failback = "immediate"

[resources.web-disk]
group = "web"
type = "shared-folder"
properties = { path = "{data}/web", create = true }

[resources.web-app]
group = "web"
type = "generic-app"
depends_on = ["web-disk"]
properties = { command = "sleep 100" }
policy = { restart_threshold = 5 }
""")
    code, out, err = run(store, "apply", str(toml))
    assert code == 0, err
    s = open_store(store)
    assert s.get("spec/groups/web").value["failback"] == "immediate"
    assert s.get("spec/resources/web-app").value["policy"]["restart_threshold"] == 5
    assert s.get("spec/resources/web-app").value["depends_on"] == ["web-disk"]
    # Applying the same file again is idempotent.
    assert run(store, "apply", str(toml))[0] == 0


def test_move_of_a_group_not_running_fails_with_1(store: Path) -> None:
    code, _, err = run(store, "group", "move", "g")
    assert code == 1 and "not running" in err


def test_default_store_lives_in_the_user_data_dir(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HACLUSTER_STORE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert CliRunner().invoke(main, ["init", "--name", "home"]).exit_code == 0
    assert (tmp_path / "xdg" / "hacluster" / "cluster" / "cluster.json").exists()
    result = CliRunner().invoke(main, ["status", "--json"])
    assert json.loads(result.stdout)["cluster"] == "home"


def test_notepad_creates_the_design_group_once(store: Path) -> None:
    code, out, err = run(store, "notepad")
    assert code == 0, err
    s = open_store(store)
    app = s.get("spec/resources/notepad-app").value
    assert app["properties"]["command"] == ["hanotepad", "{data}/notepad/notes.txt"]
    assert app["properties"]["console"] is True
    assert app["properties"]["checkpoints"] == ["{local}/state/hanotepad"]
    assert sorted(app["depends_on"]) == ["notepad-disk", "notepad-name"]
    assert s.get("spec/resources/notepad-disk").value["properties"]["path"] == \
        "{data}/notepad"
    assert s.get("spec/resources/notepad-name").value["properties"]["name"] == "notepad"
    assert s.get("spec/groups/notepad").value["desired"] == "online"
    before = tree_digest(store)
    code, out, _ = run(store, "notepad")
    assert code == 0 and "exists already; nothing changed" in out
    assert tree_digest(store) == before
