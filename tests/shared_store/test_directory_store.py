"""DirectoryStore specifics: on-disk layout, URLs, init, crash leftovers and bad input.

Bad input never gets "repaired": each test checks that the store's files are byte-for-byte
unchanged after the refusal.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from shared_store import (
    Change,
    DirectoryStore,
    StoreError,
    StoreUnavailable,
    init_store,
    open_store,
)
from shared_store.fsio import STALE_TMP_SECONDS

if TYPE_CHECKING:
    from tests.shared_store.conftest import Workers


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DirectoryStore]:
    s = init_store(tmp_path / "store", name="demo", settings={"lease_ttl": 2.0})
    assert isinstance(s, DirectoryStore)
    yield s
    s.close()


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes, to prove that nothing was rewritten."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


# -- layout ------------------------------------------------------------------------------


def test_init_lays_out_the_store(tmp_path: Path) -> None:
    root = tmp_path / "parents" / "made" / "store"
    with init_store(root, name="demo", settings={"lease_ttl": 2.0}) as s:
        assert (s.name, s.settings) == ("demo", {"lease_ttl": 2.0})
        assert s.data_dir == root / "data" and s.checkpoints_dir == root / "checkpoints"
        assert s.url == root.as_uri()
    doc = json.loads((root / "cluster.json").read_text())
    assert doc == {"name": "demo", "format": 1, "settings": {"lease_ttl": 2.0}}
    secret = root / "secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(bytes.fromhex(secret.read_text().strip())) == 32
    for sub in ("spec", "status", "events", "checkpoints", "data"):
        assert stat.S_IMODE((root / sub).stat().st_mode) == 0o700, sub
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def test_record_file_is_readable_json(store: DirectoryStore) -> None:
    store.put("spec/groups/notepad", {"preferred_owners": ["n1"], "failback": "never"})
    path = Path(store.root, "spec/groups/notepad.json")
    assert store.path_for("spec/groups/notepad") == path
    assert path.read_text() == (
        '{\n  "value": {\n    "failback": "never",\n    "preferred_owners": [\n      "n1"\n'
        '    ]\n  },\n  "version": 1\n}\n'
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_event_files_are_zero_padded_records(store: DirectoryStore) -> None:
    store.append_event({"kind": "node-up", "node": "n1"})
    doc = json.loads(Path(store.root, "events", "000000000001.json").read_text())
    assert doc["version"] == 1
    assert doc["value"]["seq"] == 1 and doc["value"]["kind"] == "node-up"
    assert store.get("events/000000000001").value["node"] == "n1"


def test_secret_returns_the_decoded_file(store: DirectoryStore) -> None:
    text = Path(store.root, "secret").read_text().strip()
    assert store.secret() == bytes.fromhex(text)


# -- URLs --------------------------------------------------------------------------------


def test_urls_and_polling_selection(store: DirectoryStore, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(store.root)
    cases = [
        (str(root), False), (root, False), (root.as_uri(), False),
        (root.as_uri() + "?watch=poll", True), (root.as_uri() + "?watch=inotify", False),
        ("file://localhost" + str(root), False),
    ]
    for url, polling in cases:
        with open_store(url) as s:
            assert (s.root, s.polling) == (str(root), polling), url
            with open_store(s.url) as again:  # url round-trips
                assert (again.root, again.polling) == (s.root, s.polling)
    with open_store(str(root), polling=True) as s:
        assert s.polling and s.url.endswith("?watch=poll")
    with open_store(root.as_uri() + "?watch=poll", polling=False) as s:
        assert not s.polling
    monkeypatch.chdir(root.parent)
    with open_store(root.name) as s:  # relative paths are made absolute
        assert s.root == str(root)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("etcd://127.0.0.1:2379?data=/shared", "etcd backend is not available yet"),
        ("http://example.invalid/store", "unsupported store URL scheme 'http'"),
        ("file://otherhost/store", "three slashes"),
        ("file:///tmp/x?watch=sometimes", "watch=poll"),
        ("file:///tmp/x?colour=blue", "the only option is"),
        ("", "invalid store URL"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        open_store(url)


# -- open and init: bad input ------------------------------------------------------------


def test_open_missing_directory_says_how_to_create_one(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(StoreError) as info:
        open_store(missing)
    assert str(info.value) == (
        f"no cluster store at {missing}; create one with 'hacluster init --store {missing}'"
    )
    assert not missing.exists()


def test_open_directory_without_cluster_json(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StoreError) as info:
        open_store(tmp_path / "plain")
    assert str(info.value) == (f"no cluster store at {tmp_path / 'plain'}; create one with "
                               f"'hacluster init --store {tmp_path / 'plain'}'")
    with pytest.raises(StoreError, match="it is a file, not a directory"):
        open_store(tmp_path / "afile")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"name": "demo", "format": 1, "sett', r"cluster.json: damaged, not valid JSON"),
        (b"", r"cluster.json: damaged, not valid JSON"),
        (b"\xff\xfe", r"cluster.json: damaged, not valid JSON"),
        (b'["demo", 1]', r"cluster.json: not a cluster file"),
        (b'{"name": "demo", "settings": {}}', r"cluster.json: not a cluster file"),
        (b'{"name": "demo", "format": 2, "settings": {}}',
         r"cluster.json: store format 2 is not supported \(this version reads format 1\)"),
        (b'{"name": "", "format": 1, "settings": {}}', r'"name" must be a non-empty string'),
        (b'{"name": "d", "format": 1, "settings": []}', r'"settings" an object'),
    ],
    ids=["truncated", "empty", "not-utf8", "list", "no-format", "format-2", "no-name",
         "settings-list"],
)
def test_bad_cluster_json_is_refused_and_left_alone(store: DirectoryStore, content: bytes,
                                                    message: str) -> None:
    root = Path(store.root)
    (root / "cluster.json").write_bytes(content)
    before = snapshot(root)
    with pytest.raises(StoreError, match=message) as info:
        open_store(root)
    assert str(root / "cluster.json") in str(info.value)
    assert snapshot(root) == before


def test_init_refuses_an_existing_store_and_touches_nothing(store: DirectoryStore) -> None:
    root = Path(store.root)
    store.put("spec/groups/g", 1)
    before = snapshot(root)
    with pytest.raises(StoreError, match="a cluster store already exists at"):
        init_store(root, name="other", settings={})
    assert snapshot(root) == before


def test_init_refuses_non_empty_directories_and_files(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty"):
        init_store(busy, name="demo", settings={})
    assert os.listdir(busy) == ["notes.txt"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StoreError, match="it is a file"):
        init_store(tmp_path / "afile", name="demo", settings={})
    empty = tmp_path / "empty"
    empty.mkdir()
    init_store(empty, name="demo", settings={}).close()  # an empty directory is fine


@pytest.mark.parametrize(("name", "settings"), [("", {}), ("a\nb", {}), ("ok", []),
                                                 ("ok", {"x": float("inf")})])
def test_init_bad_arguments(tmp_path: Path, name: str, settings: object) -> None:
    with pytest.raises(StoreError):
        init_store(tmp_path / "s", name=name, settings=settings)  # type: ignore[arg-type]
    assert not (tmp_path / "s" / "cluster.json").exists()


# -- damaged records ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{\n  "value": {"owner": "n1"', "damaged record, not valid JSON"),
        (b"", "damaged record, not valid JSON"),
        (b'{"value": 1}', "not a store record"),
        (b'{"version": "1", "value": 1}', "not a store record"),
        (b'{"version": 0, "value": 1}', "not a store record"),
        (b'{"version": true, "value": 1}', "not a store record"),
        (b'{"version": 1, "value": 1, "note": "hand edit"}', "not a store record"),
        (b"[1, 2]", "not a store record"),
    ],
    ids=["truncated", "empty", "no-version", "str-version", "zero-version", "bool-version",
         "extra-field", "list"],
)
def test_damaged_record_is_reported_and_never_rewritten(store: DirectoryStore, content: bytes,
                                                        message: str) -> None:
    store.put("status/groups/g", {"owner": "n1"})
    path = Path(store.root, "status/groups/g.json")
    path.write_bytes(content)
    before = snapshot(Path(store.root))
    calls = [
        lambda: store.get("status/groups/g"),
        lambda: store.list("status"),
        lambda: store.put("status/groups/g", {"owner": "n2"}),
        lambda: store.update("status/groups/g", lambda v: v),
        lambda: store.delete("status/groups/g"),
    ]
    for call in calls:
        with pytest.raises(StoreError) as info:
            call()
        text = str(info.value)
        assert text.startswith(f"{path}: {message}"), text
        assert "delete" in text  # says what to do
    assert snapshot(Path(store.root)) == before
    path.unlink()  # the advice works: with the file gone, the key can be written again
    assert store.put("status/groups/g", {"owner": "n2"}).version == 1


def test_damaged_event_is_reported(store: DirectoryStore) -> None:
    store.append_event({"kind": "a"})
    Path(store.root, "events", "000000000001.json").write_text('{"version": 1, "val')
    with pytest.raises(StoreError, match=r"000000000001.json: damaged record"):
        store.events()


@pytest.mark.parametrize("content", ["", "not hex", "abcd"])
def test_bad_secret_file(store: DirectoryStore, content: str) -> None:
    Path(store.root, "secret").write_text(content)
    with pytest.raises(StoreError, match=r"secret does not hold a hex secret.*token_hex"):
        store.secret()


def test_missing_secret_file(store: DirectoryStore) -> None:
    Path(store.root, "secret").unlink()
    with pytest.raises(StoreError, match="secret is missing; copy it"):
        store.secret()


# -- the filesystem changing underneath --------------------------------------------------


def test_directory_replaced_by_a_file(store: DirectoryStore) -> None:
    """Works as root too: no file mode involved."""
    store.put("spec/groups/g", 1)
    groups = Path(store.root, "spec/groups")
    shutil.rmtree(groups)
    groups.write_text("not a directory")
    for call in (lambda: store.get("spec/groups/g"), lambda: store.put("spec/groups/g", 2)):
        with pytest.raises(StoreError, match="a parent of it is a file, not a directory"):
            call()
    assert groups.read_text() == "not a directory"


def test_record_path_taken_by_a_directory(store: DirectoryStore) -> None:
    Path(store.root, "spec/groups/g.json").mkdir(parents=True)
    with pytest.raises(StoreError, match="it is a directory where a record file belongs"):
        store.get("spec/groups/g")


def test_store_removed_while_open_is_unavailable(store: DirectoryStore) -> None:
    store.put("spec/groups/g", 1)
    watch = store.watch("spec")
    shutil.rmtree(store.root)
    calls = [
        lambda: store.get("spec/groups/g"),
        lambda: store.put("spec/groups/g", 2),
        lambda: store.delete("spec/groups/g"),
        lambda: store.list("spec"),
        lambda: store.append_event({"kind": "x"}),
        lambda: store.watch("status"),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable, match="is gone"):
            call()
    with pytest.raises(StoreUnavailable, match="was removed"):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            watch.wait(deadline - time.monotonic())


def test_store_removed_while_open_is_unavailable_when_polling(tmp_path: Path) -> None:
    init_store(tmp_path / "s", name="demo", settings={}).close()
    with open_store(tmp_path / "s", polling=True) as s:
        watch = s.watch("spec")
        shutil.rmtree(tmp_path / "s")
        with pytest.raises(StoreUnavailable, match="was removed"):
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                watch.wait(deadline - time.monotonic())


NOBODY = 65534


def _open_as_nobody(root: Path) -> str:
    """open_store(root) in a forked child that dropped root for uid/gid 65534; its error.

    A fork, not a new interpreter: the venv's interpreter lives under /root, which the
    unprivileged user may not read, while the forked child already has everything loaded.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                open_store(root).close()
                message = "opened"
            except StoreError as exc:
                message = f"{type(exc).__name__} {exc}"
            os.write(write_end, message.encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, output
    return output


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory other users can traverse (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="store-perm-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path)


def test_permission_denied_is_reported(shared_tmp: Path) -> None:
    root = shared_tmp / "store"
    init_store(root, name="demo", settings={}).close()
    before = snapshot(root)
    if os.geteuid() == 0:
        # Root ignores file modes, so ask as an unprivileged user whether it may read the
        # root-owned store (mode 0700), exactly as a mistaken 'sudo hacluster init' leaves it.
        output = _open_as_nobody(root)
    else:
        (root / "cluster.json").chmod(0)
        try:
            with pytest.raises(StoreError) as info:
                open_store(root)
            output = f"{type(info.value).__name__} {info.value}"
        finally:
            (root / "cluster.json").chmod(0o600)
    assert output.startswith(f"StoreError cannot read {root / 'cluster.json'}: "), output
    assert output.endswith("permission denied; run as the user who owns the store or fix its "
                           "permissions (chown/chmod)")
    assert snapshot(root) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a check as another user")
def test_permission_denied_on_the_path_is_not_called_missing(tmp_path: Path) -> None:
    # tmp_path sits in pytest's private directory, which 'nobody' may not traverse.
    init_store(tmp_path / "s", name="demo", settings={}).close()
    output = _open_as_nobody(tmp_path / "s")
    assert "permission denied" in output and "does not exist" not in output


def test_read_only_filesystem_is_unavailable(store: DirectoryStore) -> None:
    """A read-only remount (a failing disk often ends so) makes writes StoreUnavailable."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private read-only bind mount")
    store.put("spec/groups/g", 1)
    code = (
        "from shared_store import open_store, StoreUnavailable\n"
        f"s = open_store({store.root!r})\n"
        "print(s.get('spec/groups/g').value)\n"
        "try:\n    s.put('spec/groups/g', 2)\n"
        "except StoreUnavailable as e:\n    print(e)\n"
    )
    script = 'mount --bind -o ro "$1" "$1" && exec "$2" -c "$3"'
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             script, "sh", store.root, sys.executable, code],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0 and "mount" in result.stderr:
        pytest.skip(f"cannot make a read-only bind mount here: {result.stderr.strip()}")
    lines = result.stdout.splitlines()
    assert lines[0] == "1", result.stderr
    assert "Read-only file system; check that the store's filesystem is mounted, writable" in (
        lines[1])
    assert store.get("spec/groups/g").value == 1


# -- crash leftovers ---------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["before-rename", "before-dir-sync"])
def test_writer_killed_mid_write(store: DirectoryStore, workers: Workers, stage: str) -> None:
    store.put("status/groups/g", {"owner": "n1"})
    proc = workers.start("die-mid-write", store.url, "status/groups/g", '{"owner": "n2"}', stage)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    temps = [p.name for p in Path(store.root, "status/groups").iterdir()
             if p.name.startswith(".")]
    record = store.get("status/groups/g")
    if stage == "before-rename":
        assert record.value == {"owner": "n1"} and record.version == 1  # old record intact
        assert len(temps) == 1 and temps[0].startswith(f".g.json.tmp-{proc.pid}-")
    else:
        assert record.value == {"owner": "n2"} and record.version == 2
        assert temps == []
    assert [r.key for r in store.list("status")] == ["status/groups/g"]
    # The dead writer's flock went with it: the next write does not hang.
    assert store.put("status/groups/g", {"owner": "n3"}).version == record.version + 1


def test_temp_files_are_ignored_and_stale_ones_swept(store: DirectoryStore) -> None:
    store.put("spec/groups/g", 1)
    groups = Path(store.root, "spec/groups")
    fresh = groups / ".g.json.tmp-999999-aaaaaaaa"
    stale = groups / ".h.json.tmp-999999-bbbbbbbb"
    for temp in (fresh, stale):
        temp.write_text('{"version": 1, "val')  # what a killed writer leaves
    old = time.time() - STALE_TMP_SECONDS - 5
    os.utime(stale, (old, old))
    assert [r.key for r in store.list("spec")] == ["spec/groups/g"]
    assert store.get("spec/groups/g").value == 1
    with open_store(store.root) as reopened:  # opening sweeps stale temp files
        assert [r.key for r in reopened.list("")] == ["spec/groups/g"]
    assert fresh.exists() and not stale.exists()


def test_watch_ignores_temp_files(store: DirectoryStore) -> None:
    with store.watch("spec") as watch:
        Path(store.root, "spec", ".x.json.tmp-1-abcdef12").write_text("{}")
        Path(store.root, "spec", "notes.txt").write_text("not a record")
        store.put("spec/real", 1)
        seen = []
        deadline = time.monotonic() + 5
        while "spec/real" not in {c.key for c in seen} and time.monotonic() < deadline:
            seen += watch.wait(deadline - time.monotonic())
    assert {c.key for c in seen} == {"spec/real"}


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
def test_watch_sees_hand_edits(store: DirectoryStore, polling: bool) -> None:
    """Workshops edit records with an editor; an in-place write is a change too."""
    store.put("spec/groups/g", {"failback": "never"})
    path = Path(store.root, "spec/groups/g.json")
    with open_store(store.root, polling=polling) as s, s.watch("spec/groups") as watch:
        path.write_text(path.read_text().replace("never", "immediate"))
        assert [c.key for c in watch.wait(5)] == ["spec/groups/g"]
        assert s.get("spec/groups/g").value == {"failback": "immediate"}


def test_watch_creates_the_prefix_directory(store: DirectoryStore) -> None:
    with store.watch("status/resources/new"):
        assert Path(store.root, "status/resources/new").is_dir()


def test_event_seq_continues_across_store_instances(store: DirectoryStore) -> None:
    assert store.append_event({"kind": "a"}) == 1
    with open_store(store.root) as other:
        assert other.append_event({"kind": "b"}) == 2
    assert store.append_event({"kind": "c"}) == 3  # its cached seq is stale: it probes on


def test_store_wide_lock_scope_also_serialises(tmp_path: Path) -> None:
    init_store(tmp_path / "s", name="demo", settings={}).close()
    with DirectoryStore(tmp_path / "s", lock_scope="store") as s:
        s.put("spec/a", 1)
        s.append_event({"kind": "x"})
        assert Path(tmp_path, "s", ".locks", "store.lock").exists()
    with pytest.raises(StoreError, match="lock_scope"):
        DirectoryStore(tmp_path / "s", lock_scope="row")


def test_polling_sees_changes_in_big_directories(tmp_path: Path) -> None:
    """Beyond STAT_LIMIT records the scanner reads a directory only when its mtime moves."""
    from shared_store.scanwatch import STAT_LIMIT

    init_store(tmp_path / "s", name="demo", settings={}).close()
    with open_store(tmp_path / "s", polling=True) as s:
        count = STAT_LIMIT + 20
        for i in range(count):
            s.put(f"status/many/r{i:04d}", i)
        s.put("status/many/sub/x", 1)
        with s.watch("status") as watch:
            s.put("status/many/r0003", "replaced")  # atomic replace: same name, new inode
            s.put("status/many/new", 1)
            s.delete("status/many/r0007")
            s.put("status/many/sub/x", 2)  # a subdirectory of a big directory
            want = {"status/many/r0003", "status/many/new", "status/many/r0007",
                    "status/many/sub/x"}
            seen: dict[str, str] = {}
            deadline = time.monotonic() + 10
            while not want <= seen.keys() and time.monotonic() < deadline:
                seen.update((c.key, c.kind) for c in watch.wait(deadline - time.monotonic()))
    assert seen == {"status/many/r0003": "put", "status/many/new": "put",
                    "status/many/r0007": "delete", "status/many/sub/x": "put"}


def test_polling_reports_records_of_a_removed_subdirectory(tmp_path: Path) -> None:
    init_store(tmp_path / "s", name="demo", settings={}).close()
    with open_store(tmp_path / "s", polling=True) as s:
        s.put("status/groups/g/a", 1)
        s.put("status/groups/g/b", 1)
        with s.watch("status/groups") as watch:
            shutil.rmtree(tmp_path / "s" / "status/groups/g")
            seen: set[Change] = set()
            deadline = time.monotonic() + 10
            while len(seen) < 2 and time.monotonic() < deadline:
                seen.update(watch.wait(deadline - time.monotonic()))
    assert seen == {Change("status/groups/g/a", "delete"), Change("status/groups/g/b", "delete")}


def test_many_short_lived_watches_keep_few_schedules(store: DirectoryStore) -> None:
    from shared_store.watching import IDLE_KEEP

    for i in range(IDLE_KEEP + 10):
        store.watch(f"status/r{i}").close()
    hub = store._hub
    assert hub is not None and len(hub._scheduled) <= IDLE_KEEP
    with store.watch("status/r0") as watch:  # evicted or idle: either way it works again
        store.put("status/r0/x", 1)
        assert [c.key for c in watch.wait(5)] == ["status/r0/x"]


def test_inotify_emitters_do_not_hold_back_renames(store: DirectoryStore) -> None:
    """watchdog would hold half a rename for 0.5 s (see watching._PromptInotifyEmitter);
    this fails if a watchdog upgrade moves the knob, instead of silently getting slow."""
    with store.watch("spec"):
        emitters = list(store._hub._observer.emitters)
        assert emitters
        for emitter in emitters:
            assert emitter._inotify._move_event_grouper._queue.delay == 0.0


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
def test_watch_works_again_after_its_directory_was_recreated(store: DirectoryStore,
                                                             polling: bool) -> None:
    with open_store(store.root, polling=polling) as s:
        old = s.watch("spec/groups")
        shutil.rmtree(Path(store.root, "spec/groups"))
        with pytest.raises(StoreUnavailable, match="was removed"):
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                old.wait(deadline - time.monotonic())
        old.close()
        s.put("spec/groups/x", 1)  # recreates the directory
        with s.watch("spec/groups") as watch:
            s.put("spec/groups/y", 1)
            seen: set[str] = set()
            deadline = time.monotonic() + 5
            while "spec/groups/y" not in seen and time.monotonic() < deadline:
                seen.update(c.key for c in watch.wait(deadline - time.monotonic()))
    assert "spec/groups/y" in seen


def test_a_frozen_lock_holder_blocks_only_its_own_key(tmp_path: Path) -> None:
    """A node SIGSTOPped while it renews its lease holds that key's lock: the other nodes'
    writes must go on, and a writer of the frozen key gets StoreUnavailable, not a hang."""
    import signal
    import subprocess
    import sys
    import time

    from shared_store import StoreUnavailable, init_store

    init_store(tmp_path / "s", name="t", settings={}).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import os, signal, sys\n"
            "from shared_store import DirectoryStore\n"
            "s = DirectoryStore(sys.argv[1])\n"
            "with s._lock_for('status/nodes/node1').held():\n"
            "    print('held', flush=True)\n"
            "    os.kill(os.getpid(), signal.SIGSTOP)\n"), str(tmp_path / "s")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with DirectoryStore(tmp_path / "s") as store:
            store.put("status/nodes/node2", {"holder": "node2"})  # another key: at once
            store.append_event({"kind": "test", "message": "the log is not blocked"})
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="stayed locked"):
                store.put("status/nodes/node1", {"holder": "someone"})
            assert time.monotonic() - started < 10  # bounded, not a hang
            assert store.get("status/nodes/node2").value == {"holder": "node2"}
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
