"""The ``/ws`` message protocol: parse what clients send, encode what they get.

Pure functions and data, no I/O: both server adapters and the tests use the
same code. Every frame is a JSON object with a ``type``; see the project's
README for the table of messages and ``static/protocol.schema.json`` for the
machine-readable schema.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

MAX_ROOM_LENGTH = 64
MAX_TEXT_LENGTH = 4096
ROOM_PATTERN = re.compile(r"[A-Za-z0-9_.:-]+")
"""Room names: ASCII letters, digits, ``_``, ``-``, ``.`` or ``:``, at most 64 of them."""
SURROGATES = re.compile("[\ud800-\udfff]")
MAX_ID_LENGTH = 64
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
"""Message ids a client chooses: ASCII letters, digits, ``_`` or ``-``, at most 64 of them."""
EPOCH_PATTERN = re.compile(r"[A-Za-z0-9]{1,32}")
MAX_EVENT_LENGTH = 64
EVENT_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]*")
"""App-defined event names: a letter, then letters, digits, ``_``, ``.``, ``:`` or ``-``."""
MAX_DATA_DEPTH = 32
"""How deeply an event's ``data`` may nest arrays and objects."""
"""A room history's epoch, as the server hands it out."""
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
    "invalid_id",  # "id" of a message not a string of 1-64 letters, digits, "_" or "-"
    "invalid_since",  # "since" of a join not {"epoch": string, "offset": integer >= 0}
    "unavailable",  # the server cannot publish right now (its broker is away): send it again
    "invalid_event",  # "event" not a valid name, or its "data" too deep or not Unicode text
)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a room's history stands: its ``epoch`` (which changes when the history is
    lost) and the ``offset`` of a message in it (1 for the first, one more each)."""

    epoch: str
    offset: int


@dataclass(frozen=True, slots=True)
class Join:
    """A ``join``: the client enters ``room``; with ``since``, it gets the messages
    it missed after that position, if the history still holds them all."""

    room: str
    since: Position | None = None


@dataclass(frozen=True, slots=True)
class Leave:
    """A ``leave``: the client leaves ``room``."""

    room: str


@dataclass(frozen=True, slots=True)
class Ping:
    """A ``ping``: the server answers ``pong``."""


@dataclass(frozen=True, slots=True)
class AppEvent:
    """An app-defined event a message carries: its ``name``, and its ``data`` (any JSON)."""

    name: str
    data: Any = None


@dataclass(frozen=True, slots=True)
class Say:
    """A ``message`` from the client to everyone in ``room``: a chat ``text``, an app
    ``event``, or both. With an ``id``, the client is answered with an ``ack``, and a
    message sent again with the same id is not delivered twice."""

    room: str
    text: str | None
    id: str | None = None
    event: AppEvent | None = None


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
        room, event = _room(data), _event(data)
        text = _text(data) if "text" in data or event is None else None
        return Say(room, text, _id(data), event)
    if kind == "join":
        return Join(_room(data), _since(data))
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


def _event(data: dict[str, Any]) -> AppEvent | None:
    if "event" not in data:
        if "data" in data:
            raise ProtocolError("invalid_event", '"data" goes with an "event"', _room(data))
        return None
    name = data["event"]
    if (
        not isinstance(name, str)
        or len(name) > MAX_EVENT_LENGTH
        or not EVENT_PATTERN.fullmatch(name)
    ):
        raise ProtocolError(
            "invalid_event",
            f'"event" must be a letter then up to {MAX_EVENT_LENGTH - 1} letters, digits, '
            '"_", ".", ":" or "-"',
            _room(data),
        )
    value = data.get("data")
    if not _fits(value):
        raise ProtocolError(
            "invalid_event",
            f'"data" may nest at most {MAX_DATA_DEPTH} deep, with Unicode text and finite numbers',
            _room(data),
        )
    return AppEvent(name, value)


def _fits(value: Any) -> bool:
    """Whether ``value`` nests at most :data:`MAX_DATA_DEPTH` deep, with no lone surrogate
    in any string or key and no NaN or infinity (which JSON cannot spell, though Python's
    parser takes them): what every frame that carries it can encode."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if SURROGATES.search(item) is not None:
                return False
        elif isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, list | dict):
            if depth >= MAX_DATA_DEPTH:
                return False
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return True


def _id(data: dict[str, Any]) -> str | None:
    if "id" not in data:
        return None
    value = data["id"]
    if not isinstance(value, str) or len(value) > MAX_ID_LENGTH or not ID_PATTERN.fullmatch(value):
        raise ProtocolError(
            "invalid_id",
            f'"id" must be 1-{MAX_ID_LENGTH} ASCII letters, digits, "_" or "-"',
            _room(data),
        )
    return value


def _since(data: dict[str, Any]) -> Position | None:
    if "since" not in data:
        return None
    since = data["since"]
    if isinstance(since, dict):
        epoch, offset = since.get("epoch"), since.get("offset")
        if (
            isinstance(epoch, str)
            and EPOCH_PATTERN.fullmatch(epoch)
            and type(offset) is int  # not a bool
            and 0 <= offset < 2**53
        ):
            return Position(epoch, offset)
    raise ProtocolError(
        "invalid_since",
        '"since" must be {"epoch": the epoch a joined or message gave, "offset": an integer >= 0}',
        _room(data),
    )


def encode(event: dict[str, Any]) -> str:
    """Serialize one server event to a text frame (compact JSON, UTF-8 kept as is)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def welcome(connection_id: str) -> str:
    return encode({"type": "welcome", "id": connection_id})


Parts = tuple[str, ...]
"""A frame cut around the values a broker fills in: ``parts[0] + values[0] + parts[1] + …``,
each value as JSON text. The broker fills them in, in the order the functions below give."""


def fill(parts: Parts, values: tuple[str, ...]) -> str:
    """The frame ``parts`` make with ``values`` (JSON texts) filled in, as many as it takes."""
    pieces = [parts[0]]
    for value, part in zip(values, parts[1:], strict=False):
        pieces += (value, part)
    return "".join(pieces)


def _open(event: dict[str, Any]) -> str:
    """``event`` encoded without its closing brace, for fields to follow."""
    return encode(event)[:-1]


def joined_parts(room: str, resuming: bool) -> Parts:
    """A ``joined`` frame, to be filled with the room's member count, the epoch and
    offset its history is at (``null`` both, while the history cannot be reached),
    and, if the join asked to resume, whether it did and how many messages follow."""
    head = (_open({"type": "joined", "room": room}) + ',"members":', ',"epoch":', ',"offset":')
    if resuming:
        return (*head, ',"recovered":', ',"missed":', "}")
    return (*head, "}")


def joined_values(
    members: int, position: Position | None, recovered: bool = False, missed: int = 0
) -> tuple[str, ...]:
    """What :func:`joined_parts` is filled with, as JSON texts."""
    epoch, offset = ("null", "null") if position is None else position_values(position)
    return (str(members), epoch, offset, "true" if recovered else "false", str(missed))


def left(room: str) -> str:
    return encode({"type": "left", "room": room})


def presence_parts(room: str, who: str, event: str) -> Parts:
    """Sent to the other members when ``who`` joins or leaves (``event``), to be
    filled with the room's member count."""
    head = _open({"type": "presence", "room": room, "id": who, "event": event})
    return (head + ',"members":', "}")


def message_parts(
    room: str, sender: str, text: str | None, ts: int, event: AppEvent | None = None
) -> Parts:
    """A room message (its ``text``, its app ``event``, or both), to be filled with its
    position (:func:`position_values`); ``ts`` is the server's time in milliseconds
    since the epoch."""
    message: dict[str, Any] = {"type": "message", "room": room, "from": sender}
    if text is not None:
        message["text"] = text
    if event is not None:
        message |= {"event": event.name, "data": event.data}
    head = _open({**message, "ts": ts})
    return (head + ',"epoch":', ',"offset":', "}")


def position_values(position: Position) -> tuple[str, str]:
    """What :func:`message_parts` is filled with, as JSON texts (also a ``joined``'s)."""
    return f'"{position.epoch}"', str(position.offset)


def ack(room: str, message_id: str, position: Position) -> str:
    """The answer to a message with an ``id``: it has its place in the room's history."""
    return encode(
        {
            "type": "ack",
            "room": room,
            "id": message_id,
            "epoch": position.epoch,
            "offset": position.offset,
        }
    )


PONG = encode({"type": "pong"})


def error(code: str, detail: str, room: str | None = None, message_id: str | None = None) -> str:
    """An ``error`` event; ``room`` is included when the failed request named a valid one,
    ``id`` when it was a message with one."""
    event = {"type": "error", "code": code, "detail": detail}
    if room is not None:
        event["room"] = room
    if message_id is not None:
        event["id"] = message_id
    return encode(event)


UNAVAILABLE = "the room's history cannot be reached right now: send the message again later"
"""The detail of the ``unavailable`` error."""
