"""The ``/ws`` message protocol: parse what clients send, encode what they get.

Pure functions and data, no I/O: both server adapters and the tests use the
same code. Every frame is a JSON object with a ``type``; see the project's
README for the table of messages and ``static/protocol.schema.json`` for the
machine-readable schema.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_ROOM_LENGTH = 64
MAX_TEXT_LENGTH = 4096
ROOM_PATTERN = re.compile(r"[A-Za-z0-9_.:-]+")
"""Room names: ASCII letters, digits, ``_``, ``-``, ``.`` or ``:``, at most 64 of them."""
SURROGATES = re.compile("[\ud800-\udfff]")
"""Lone surrogates, which JSON can spell (``\\ud800``) and no UTF-8 frame can carry."""


class ProtocolError(ValueError):
    """A client frame the server cannot act on; answered with an ``error`` event.

    Attributes:
        code: Stable machine-readable reason (see :data:`ERROR_CODES`).
        detail: Human-readable explanation.
        room: The (valid) room the failed request named, if any.
    """

    def __init__(self, code: str, detail: str, room: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.room = room


ERROR_CODES = (
    "invalid_json",  # not JSON text
    "invalid_message",  # JSON, but not an object with a string "type"
    "unknown_type",  # a "type" the server does not know
    "invalid_room",  # "room" missing, not a string, or not a valid name
    "invalid_text",  # "text" missing, not a string, empty or too long
    "not_joined",  # message to, or leave from, a room the connection is not in
    "too_many_rooms",  # join beyond the per-connection room limit
    "rate_limited",  # sent faster than the per-connection rate limit; the message is dropped
)


@dataclass(frozen=True, slots=True)
class Join:
    """A ``join``: the client enters ``room``."""

    room: str


@dataclass(frozen=True, slots=True)
class Leave:
    """A ``leave``: the client leaves ``room``."""

    room: str


@dataclass(frozen=True, slots=True)
class Ping:
    """A ``ping``: the server answers ``pong``."""


@dataclass(frozen=True, slots=True)
class Say:
    """A ``message`` from the client to everyone in ``room``."""

    room: str
    text: str


ClientMessage = Join | Leave | Say | Ping


def parse(frame: str) -> ClientMessage:
    """Parse and validate one text frame; raise :class:`ProtocolError` if it is unusable."""
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError):  # RecursionError: nesting such as [[[[…]]]]
        raise ProtocolError("invalid_json", "the frame is not valid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("invalid_message", 'a message is a JSON object with a string "type"')
    kind = data["type"]
    if kind == "message":
        return Say(_room(data), _text(data))
    if kind == "join":
        return Join(_room(data))
    if kind == "leave":
        return Leave(_room(data))
    if kind == "ping":
        return Ping()
    raise ProtocolError("unknown_type", f"unknown message type {kind[:32]!r}")


def _room(data: dict[str, Any]) -> str:
    room = data.get("room")
    if not isinstance(room, str) or len(room) > MAX_ROOM_LENGTH or not ROOM_PATTERN.fullmatch(room):
        raise ProtocolError(
            "invalid_room",
            f'"room" must be 1-{MAX_ROOM_LENGTH} ASCII letters, digits, "_", "-", "." or ":"',
        )
    return room


def _text(data: dict[str, Any]) -> str:
    text = data.get("text")
    # JSON can spell lone surrogates (\ud800), which no UTF-8 frame can carry on.
    if (
        not isinstance(text, str)
        or not 1 <= len(text) <= MAX_TEXT_LENGTH
        or SURROGATES.search(text) is not None
    ):
        raise ProtocolError(
            "invalid_text", f'"text" must be a string of 1-{MAX_TEXT_LENGTH} Unicode characters'
        )
    return text


def encode(event: dict[str, Any]) -> str:
    """Serialize one server event to a text frame (compact JSON, UTF-8 kept as is)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def welcome(connection_id: str) -> str:
    return encode({"type": "welcome", "id": connection_id})


def joined(room: str, members: int) -> str:
    return encode({"type": "joined", "room": room, "members": members})


def left(room: str) -> str:
    return encode({"type": "left", "room": room})


def presence(room: str, members: int, who: str, event: str) -> str:
    """Sent to the other members when ``who`` joins or leaves (``event``)."""
    return encode({"type": "presence", "room": room, "members": members, "id": who, "event": event})


def split_at_members(frame: str) -> tuple[str, str]:
    """A ``joined`` or ``presence`` frame cut around its member count.

    The broker that knows the count fills it in: ``head + str(members) + tail``.
    """
    head, tail = frame.split('"members":0', 1)
    return head + '"members":', tail


def message(room: str, sender: str, text: str, ts: int) -> str:
    """A room message; ``ts`` is the server's time in milliseconds since the epoch."""
    return encode({"type": "message", "room": room, "from": sender, "text": text, "ts": ts})


PONG = encode({"type": "pong"})


def error(code: str, detail: str, room: str | None = None) -> str:
    """An ``error`` event; ``room`` is included when the failed request named a valid one."""
    event = {"type": "error", "code": code, "detail": detail}
    if room is not None:
        event["room"] = room
    return encode(event)
