"""The monitor's line protocol as pure logic: parsing, validation, line splitting."""

from __future__ import annotations

import json

import pytest

from cluster.monitor.protocol import (
    Command,
    LineSplitter,
    ProtocolError,
    Timing,
    encode,
    parse_command,
    state_event,
)


def test_online_command_with_defaults() -> None:
    cmd = parse_command(b'{"op": "online", "resource": "r", "type": "generic-app"}')
    assert cmd == Command(op="online", resource="r", type="generic-app", props={}, env={},
                          timing=Timing(180.0, 5.0, 60.0))


def test_timing_fields_override_defaults_and_none_means_default() -> None:
    cmd = parse_command(json.dumps({
        "op": "online", "resource": "r", "type": "t", "props": {"a": 1}, "env": {"K": "V"},
        "timing": {"pending_timeout": 2, "looks_alive_interval": None, "is_alive_interval": 0.5},
    }))
    assert cmd.timing == Timing(pending_timeout=2.0, looks_alive_interval=5.0,
                                is_alive_interval=0.5)
    assert cmd.props == {"a": 1} and cmd.env == {"K": "V"}


@pytest.mark.parametrize(
    ("line", "message", "resource"),
    [
        ('{"op": "online", "resource": "r", "type": "t", "timing": {"pending": 1}}',
         "online r: unknown timing field 'pending'", "r"),
        ('{"op": "online", "resource": "r", "type": "t", "timing": {"pending_timeout": true}}',
         "online r: timing.pending_timeout must be a number of seconds", "r"),
        ('{"op": "online", "resource": "r", "type": ""}',
         "online r: 'type' must be a non-empty string", "r"),
        ('{"op": "terminate", "resource": 5}', "terminate: 'resource' must be a non-empty string",
         None),
        ('{"op": "lease", "valid_for": 0}', "lease: 'valid_for' must be a positive number", None),
        ('"online"', "a command must be a JSON object with an 'op'", None),
    ],
)
def test_bad_commands_say_what_is_wrong(line: str, message: str, resource: str | None) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_command(line)
    assert str(info.value).startswith(message)
    assert info.value.resource == resource


def test_simple_commands() -> None:
    assert parse_command('{"op": "ping", "id": 7}') == Command(op="ping", id=7)
    assert parse_command('{"op": "shutdown"}') == Command(op="shutdown")
    assert parse_command('{"op": "offline", "resource": "r"}') == Command(op="offline",
                                                                        resource="r")
    assert parse_command('{"op": "lease", "valid_for": 1.5}').valid_for == 1.5


def test_encode_is_one_line_and_never_fails() -> None:
    data = encode(state_event("r", "online", pid=3, pgid=3, details={"odd": object()}))
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert json.loads(data)["details"]["odd"].startswith("<object object")


def test_line_splitter_joins_chunks_and_drops_overlong_lines() -> None:
    splitter = LineSplitter(limit=16)
    assert list(splitter.feed(b'{"a"')) == []
    assert list(splitter.feed(b':1}\n\n{"b":2}\n')) == [b'{"a":1}', b'{"b":2}']
    items = list(splitter.feed(b"x" * 20))
    assert len(items) == 1 and isinstance(items[0], ProtocolError)
    assert list(splitter.feed(b"more of the same line\nok\n")) == [b"ok"]
    items = list(splitter.feed(b"y" * 17 + b"\n"))  # overlong but complete in one chunk
    assert len(items) == 1 and isinstance(items[0], ProtocolError)
