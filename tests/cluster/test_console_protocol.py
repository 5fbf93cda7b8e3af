"""The console wire protocol as pure logic: framing, limits, the HMAC challenge, the filter."""

from __future__ import annotations

import secrets
import struct

import pytest

from cluster.console.protocol import (
    HEADER,
    IN_BAND_RESIZE_QUERY,
    MAX_FRAME,
    Frame,
    FrameReader,
    Kind,
    ProtocolError,
    QueryFilter,
    encode,
    mac,
    verify,
)

# --- framing ---------------------------------------------------------------------------------


def test_encode_then_feed_gives_the_same_frames() -> None:
    stream = (encode(Kind.OUTPUT, b"\x1b[2Jhello") + encode(Kind.RESIZE, {"rows": 30, "cols": 100})
              + encode(Kind.PING) + encode(Kind.INPUT, b"x" * MAX_FRAME))
    frames = FrameReader().feed(stream)
    assert [f.kind for f in frames] == [Kind.OUTPUT, Kind.RESIZE, Kind.PING, Kind.INPUT]
    assert frames[0].payload == b"\x1b[2Jhello"
    assert frames[1].json() == {"rows": 30, "cols": 100}
    assert frames[2].payload == b""
    assert len(frames[3].payload) == MAX_FRAME


def test_frames_split_at_every_byte_boundary_come_out_whole() -> None:
    stream = encode(Kind.OUTPUT, b"abc") + encode(Kind.PONG, b"k") + encode(Kind.EXIT, {"r": 1})
    reader = FrameReader()
    frames: list[Frame] = []
    for byte in stream:
        frames += reader.feed(bytes([byte]))
    assert frames == [Frame(Kind.OUTPUT, b"abc"), Frame(Kind.PONG, b"k"),
                      Frame(Kind.EXIT, b'{"r": 1}')]
    assert reader.feed(b"") == []


def test_a_partial_frame_waits_for_the_rest() -> None:
    data = encode(Kind.OUTPUT, b"0123456789")
    reader = FrameReader()
    assert reader.feed(data[:7]) == []
    assert reader.feed(data[7:]) == [Frame(Kind.OUTPUT, b"0123456789")]


def test_unknown_frame_type_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="unknown frame type 0x7f"):
        FrameReader().feed(HEADER.pack(0x7F, 0))


def test_garbage_text_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        FrameReader().feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


def test_oversized_length_is_refused_before_the_payload_arrives() -> None:
    """The reader must not buffer 4 GB because a header says so: the header alone is enough."""
    header = struct.pack(">BI", Kind.INPUT, MAX_FRAME + 1)
    with pytest.raises(ProtocolError, match="exceeds"):
        FrameReader().feed(header)
    with pytest.raises(ProtocolError, match="exceeds"):
        FrameReader().feed(struct.pack(">BI", Kind.AUTH, 0xFFFFFFFF))


def test_a_frame_of_exactly_the_limit_is_fine_and_one_more_byte_is_not() -> None:
    assert FrameReader().feed(encode(Kind.OUTPUT, b"y" * MAX_FRAME))[0].payload == b"y" * MAX_FRAME
    with pytest.raises(ValueError, match="exceeds"):
        encode(Kind.OUTPUT, b"y" * (MAX_FRAME + 1))


def test_allowed_kinds_restrict_what_a_peer_may_send() -> None:
    reader = FrameReader(allowed=frozenset({Kind.AUTH}))
    assert reader.feed(encode(Kind.AUTH, {"a": 1}))[0].kind == Kind.AUTH
    with pytest.raises(ProtocolError, match="unexpected INPUT"):
        reader.feed(encode(Kind.INPUT, b"rm -rf /\r"))


@pytest.mark.parametrize("payload", [b"not json", b"\xff\xfe", b"[1, 2]", b'"text"', b""])
def test_json_payloads_must_be_objects(payload: bytes) -> None:
    with pytest.raises(ProtocolError, match="RESIZE frame is not"):
        Frame(Kind.RESIZE, payload).json()


# --- authentication ---------------------------------------------------------------------------


def test_the_right_secret_verifies() -> None:
    secret, nonce = secrets.token_bytes(32), secrets.token_bytes(32)
    assert verify(secret, nonce, "notepad-app", mac(secret, nonce, "notepad-app"))


def test_a_wrong_secret_does_not_verify() -> None:
    nonce = secrets.token_bytes(32)
    answer = mac(secrets.token_bytes(32), nonce, "notepad-app")
    assert not verify(secrets.token_bytes(32), nonce, "notepad-app", answer)


def test_an_answer_cannot_be_replayed_for_another_nonce_or_console() -> None:
    secret, nonce = secrets.token_bytes(32), secrets.token_bytes(32)
    answer = mac(secret, nonce, "notepad-app")
    assert not verify(secret, secrets.token_bytes(32), "notepad-app", answer)
    assert not verify(secret, nonce, "other-app", answer)


@pytest.mark.parametrize("answer", [None, 42, b"bytes", "", "00" * 32, ["list"]])
def test_missing_or_malformed_answers_do_not_verify(answer: object) -> None:
    assert not verify(b"s" * 32, b"n" * 32, "r", answer)


def test_the_mac_never_contains_the_secret() -> None:
    secret = b"0123456789abcdef0123456789abcdef"
    answer = mac(secret, b"nonce", "r")
    assert secret.hex() not in answer and secret.decode() not in answer


# --- the in-band resize query filter ---------------------------------------------------------


def test_the_query_is_removed_and_everything_else_kept() -> None:
    text = b"\x1b[?1049h" + IN_BAND_RESIZE_QUERY + b"\x1b[?2026$phello"
    assert QueryFilter().feed(text) == b"\x1b[?1049h\x1b[?2026$phello"


@pytest.mark.parametrize("cut", range(1, len(IN_BAND_RESIZE_QUERY)))
def test_the_query_split_across_two_chunks_is_removed(cut: int) -> None:
    query_filter = QueryFilter()
    first = b"before" + IN_BAND_RESIZE_QUERY[:cut]
    second = IN_BAND_RESIZE_QUERY[cut:] + b"after"
    assert query_filter.feed(first) + query_filter.feed(second) == b"beforeafter"


def test_the_query_fed_one_byte_at_a_time_is_removed() -> None:
    query_filter = QueryFilter()
    stream = b"a" + IN_BAND_RESIZE_QUERY + b"b" + IN_BAND_RESIZE_QUERY * 2 + b"c"
    assert b"".join(query_filter.feed(bytes([b])) for b in stream) == b"abc"


def test_a_prefix_that_turns_out_different_is_released_intact() -> None:
    query_filter = QueryFilter()
    held = query_filter.feed(b"text\x1b[?20")
    assert held == b"text"
    assert query_filter.feed(b"26h more") == b"\x1b[?2026h more"


def test_the_enable_and_disable_sequences_pass() -> None:
    """Only the query goes: switching the mode off at exit must still reach the terminal."""
    assert QueryFilter().feed(b"\x1b[?2048h\x1b[?2048l") == b"\x1b[?2048h\x1b[?2048l"
