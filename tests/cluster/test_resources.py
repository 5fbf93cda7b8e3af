"""Resource types on their own: validate(), shared-folder, generic-script exit codes, and the
generic-app process handling that does not need a monitor (console pty, environment, log)."""

from __future__ import annotations

import os
import stat
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.resources import ResourceContext, UnknownResourceType, get_type, load_types
from cluster.resources.generic_app import GenericApp
from cluster.resources.generic_script import GenericScript, ScriptError
from cluster.resources.shared_folder import SharedFolder
from tests.helpers.procs import ProcessTracker, pid_alive
from tests.helpers.wait import wait_until


@pytest.fixture
def procs() -> Iterator[ProcessTracker]:
    with ProcessTracker() as tracker:
        yield tracker


@pytest.fixture
def ctx(tmp_path: Path) -> ResourceContext:
    return ResourceContext(node="n1", local_dir=tmp_path / "local", data_dir=tmp_path / "data",
                           env={"HACLUSTER_NODE": "n1"})


# -- Registry --------------------------------------------------------------------------------


def test_entry_points_provide_the_builtin_types() -> None:
    types = load_types()
    assert types["generic-app"] is GenericApp
    assert types["generic-script"] is GenericScript
    assert types["shared-folder"] is SharedFolder
    assert all(cls.type_name == name for name, cls in types.items())


def test_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(UnknownResourceType) as info:
        get_type("generic-ap")
    assert isinstance(info.value, KeyError)
    assert str(info.value) == (
        "unknown resource type 'generic-ap'; known types: generic-app, generic-script, "
        "network-name, shared-folder"
    )


# -- validate() ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "props", "message"),
    [
        (GenericApp, {}, "generic-app: property 'command' is required"),
        (GenericApp, {"command": "  "}, "generic-app: property 'command' is required"),
        (GenericApp, {"command": []}, "generic-app: command is empty; give the program to run"),
        (GenericApp, {"command": "app 'unclosed"}, "generic-app: cannot parse command"),
        (GenericApp, {"command": ["app", 3]}, "command must be a string or a list of strings"),
        (GenericApp, {"command": "app", "stop_timeout": "soon"},
         "stop_timeout must be a number of seconds, not 'soon'"),
        (GenericApp, {"command": "app", "stop_timeout": "-1"},
         "stop_timeout must be a positive number of seconds"),
        (GenericApp, {"command": "app", "console": "maybe"},
         "console must be true or false, not 'maybe'"),
        (GenericApp, {"command": "app", "env": "FOO"}, "env entry 'FOO' has no '='"),
        (GenericApp, {"command": "app", "env": {"A=B": "1"}}, "bad environment variable name"),
        (GenericApp, {"command": "app", "checkpoints": [""]}, "checkpoints must be a path"),
        (GenericApp, {"command": "app", "cwd": ""}, "cwd must be a directory path"),
        (GenericApp, {"comand": "app"}, "unknown property 'comand'; known properties: command,"),
        (SharedFolder, {}, "shared-folder: property 'path' is required (e.g. --prop path="),
        (SharedFolder, {"path": "/x", "create": "perhaps"}, "create must be true or false"),
        (SharedFolder, {"path": "/x", "size": "1G"}, "unknown property 'size'"),
        (GenericScript, {}, "generic-script: property 'script' is required"),
        (GenericScript, {"script": "/x", "timeout": "0"},
         "timeout must be a positive number of seconds"),
        (GenericScript, {"script": "/x", "timeout": "inf"}, "timeout must be a positive"),
    ],
)
def test_validate_rejects_bad_props_with_one_clear_line(cls, props, message) -> None:
    with pytest.raises(ValueError) as info:
        cls.validate(props)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_generic_app_validate_normalises_cli_strings() -> None:
    props = GenericApp.validate({
        "command": "hanotepad '{data}/notepad/my notes.txt'", "console": "true",
        "env": "A=1, B=x=y", "stop_timeout": "2.5", "checkpoints": "{local}/state/hanotepad",
    })
    assert props == {
        "command": ["hanotepad", "{data}/notepad/my notes.txt"], "cwd": None,
        "env": {"A": "1", "B": "x=y"}, "stop_timeout": 2.5, "console": True,
        "checkpoints": ["{local}/state/hanotepad"],
    }
    assert GenericApp.validate(props) == props  # the monitor validates resolved props again


def test_validate_accepts_toml_values() -> None:
    props = GenericApp.validate({"command": ["app", "--x"], "console": False,
                                 "env": {"N": 3}, "stop_timeout": 1})
    assert props["env"] == {"N": "3"}
    assert props["stop_timeout"] == 1.0
    assert SharedFolder.validate({"path": "{data}/d", "create": True}) == {
        "path": "{data}/d", "create": True}
    assert GenericScript.validate({"script": "/bin/agent", "timeout": 5}) == {
        "script": ["/bin/agent"], "timeout": 5.0}


# -- shared-folder ---------------------------------------------------------------------------


def test_shared_folder_online_needs_an_existing_folder(tmp_path: Path, ctx) -> None:
    folder = SharedFolder("disk", {"path": str(tmp_path / "missing")}, ctx)
    with pytest.raises(RuntimeError, match="does not exist; create it or set create=true"):
        folder.online()
    (tmp_path / "file").write_text("x")
    with pytest.raises(RuntimeError, match="is not a folder"):
        SharedFolder("disk", {"path": str(tmp_path / "file")}, ctx).online()


def test_shared_folder_create_and_probe(tmp_path: Path, ctx) -> None:
    path = tmp_path / "data" / "notepad"
    folder = SharedFolder("disk", {"path": str(path), "create": "true"}, ctx)
    folder.online()
    assert path.is_dir()
    assert folder.looks_alive() and folder.is_alive()
    assert list(path.iterdir()) == []  # the probe cleaned up after itself
    folder.offline()
    folder.terminate()
    assert path.is_dir()  # the data stays
    path.rmdir()
    assert not folder.looks_alive()
    with pytest.raises(RuntimeError, match="is not writable"):
        folder.is_alive()


def test_shared_folder_that_refuses_writes_fails_online(tmp_path: Path, ctx) -> None:
    if os.geteuid() == 0:
        path = Path("/sys")  # refuses new files even to root
    else:
        path = tmp_path / "ro"
        path.mkdir()
        path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    with pytest.raises(RuntimeError, match=f"folder {path} is not writable"):
        SharedFolder("disk", {"path": str(path)}, ctx).online()


# -- generic-script --------------------------------------------------------------------------

AGENT = """\
#!/bin/sh
# A tiny OCF-style agent: the state file says whether "the service" runs.
state="{state}"
echo "$1" >> "{log}"
case "$1" in
  online) [ -f "{fail}" ] && {{ echo "disk on fire" >&2; exit 1; }}
          [ -f "{hang}" ] && {{ echo $$ > "{hang}.pid"; exec sleep 60; }}
          touch "$state" ;;
  offline|terminate) rm -f "$state" ;;
  looks-alive|is-alive) [ -f "$state" ] || exit 7 ;;
  *) exit 3 ;;
esac
exit 0
"""


@pytest.fixture
def agent(tmp_path: Path) -> dict[str, Path]:
    paths = {k: tmp_path / k for k in ("state", "log", "fail", "hang")}
    script = tmp_path / "agent.sh"
    script.write_text(AGENT.format(**paths))
    script.chmod(0o755)
    paths["script"] = script
    return paths


def test_generic_script_actions_and_exit_codes(agent, ctx) -> None:
    res = GenericScript("svc", {"script": str(agent["script"])}, ctx)
    assert res.looks_alive() is False  # 7: not running
    res.online()
    assert agent["state"].exists()
    assert res.looks_alive() and res.is_alive()
    res.offline()
    assert not res.is_alive()
    res.offline()  # 7 or 0: offline twice is fine
    res.terminate()
    assert agent["log"].read_text().split() == [
        "looks-alive", "online", "looks-alive", "is-alive", "offline", "is-alive", "offline",
        "terminate"]


def test_generic_script_error_carries_code_and_stderr(agent, ctx) -> None:
    agent["fail"].touch()
    res = GenericScript("svc", {"script": str(agent["script"])}, ctx)
    with pytest.raises(ScriptError) as info:
        res.online()
    assert str(info.value) == "script online failed with exit code 1 (generic error): disk on fire"


def test_generic_script_unimplemented_action_is_an_error(tmp_path: Path, ctx) -> None:
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\nexit 3\n")
    script.chmod(0o755)
    res = GenericScript("svc", {"script": str(script)}, ctx)
    with pytest.raises(ScriptError, match=r"is-alive failed with exit code 3 \(unimplemented\)"):
        res.is_alive()
    res.terminate()  # an error from terminate is logged, never raised


def test_generic_script_timeout_kills_the_call(agent, ctx, procs) -> None:
    agent["hang"].touch()
    res = GenericScript("svc", {"script": str(agent["script"]), "timeout": "0.3"}, ctx)
    with pytest.raises(ScriptError, match=r"script online timed out after 0.3 s"):
        res.online()
    pid = int(Path(f"{agent['hang']}.pid").read_text())
    procs.track(pid)
    wait_until(lambda: not pid_alive(pid), message="the hung script to be killed")


def test_generic_script_terminate_kills_a_call_in_flight(agent, ctx, procs) -> None:
    agent["hang"].touch()
    res = GenericScript("svc", {"script": str(agent["script"])}, ctx)
    errors: list[Exception] = []

    def bring_online() -> None:
        try:
            res.online()
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=bring_online)
    thread.start()
    pid_file = Path(f"{agent['hang']}.pid")
    pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(),
                         message="the online call to hang"))
    procs.track(pid)
    res.terminate()
    thread.join(10)
    assert not thread.is_alive()
    assert errors and "killed by signal 9" in str(errors[0])
    assert not pid_alive(pid)


def test_generic_script_missing_script(tmp_path: Path, ctx) -> None:
    res = GenericScript("svc", {"script": str(tmp_path / "nope.sh")}, ctx)
    with pytest.raises(ScriptError, match="cannot run .*nope.sh.*No such file"):
        res.online()


# -- generic-app without a monitor -----------------------------------------------------------


def test_generic_app_missing_program_or_cwd_fails_clearly(tmp_path: Path, ctx) -> None:
    app = GenericApp("app", {"command": "no-such-program-xyz --flag"}, ctx)
    with pytest.raises(RuntimeError, match="cannot start 'no-such-program-xyz': command not found"):
        app.online()
    app = GenericApp("app", {"command": "true", "cwd": str(tmp_path / "gone")}, ctx)
    with pytest.raises(RuntimeError, match="working directory .*gone does not exist"):
        app.online()
    app.terminate()  # never started: nothing to do, no error


def test_generic_app_environment_and_log(tmp_path: Path, ctx, procs) -> None:
    code = "import os; print(os.environ['HACLUSTER_NODE'], os.environ['EXTRA'], os.getcwd())"
    app = GenericApp("app", {"command": [sys.executable, "-c", code], "env": "EXTRA=yes",
                             "cwd": str(tmp_path)}, ctx)
    app.online()
    procs.track_group(app.pgid())
    assert app.pgid() == app.pid() == os.getpgid(app.pid())
    log = tmp_path / "local" / "logs" / "app.log"
    wait_until(lambda: log.exists() and log.read_text().strip(), message="the app's output")
    assert log.read_text().split() == ["n1", "yes", str(tmp_path)]


def test_generic_app_console_runs_on_a_controlling_pty(ctx, procs) -> None:
    code = textwrap.dedent("""\
        import os, shutil, sys
        fd = os.open("/dev/tty", os.O_RDWR)   # only works with a controlling terminal
        print("tty", os.isatty(0), os.isatty(1), shutil.get_terminal_size(), flush=True)
        sys.stdin.readline()
    """)
    app = GenericApp("app", {"command": [sys.executable, "-c", code], "console": True}, ctx)
    app.online()
    procs.track_group(app.pgid())
    assert app.master_fd is not None
    output = wait_until(lambda: b"columns" in app.output.snapshot() and app.output.snapshot(),
                        message="the console app's first line")
    assert b"tty True True os.terminal_size(columns=80, lines=24)" in output
    assert app.looks_alive() and app.is_alive()
    os.write(app.master_fd, b"bye\r")
    wait_until(lambda: not app.looks_alive(), message="the console app to exit")
