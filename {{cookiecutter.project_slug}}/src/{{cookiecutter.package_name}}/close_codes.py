"""The websocket close codes the server sends, and which ones a peer may send.

One home for them: both server adapters, the hub and the protocol fixes close
with these names. The README's list of close codes says when each is sent.
"""

from enum import IntEnum


class CloseCode(IntEnum):
    """Close codes of RFC 6455 (section 7.4.1) and the IANA registry, named as
    ``websockets.frames.CloseCode`` names them."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001  # the server stops, or a peer stopped answering pings
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003  # a binary frame on /ws
    INVALID_DATA = 1007  # invalid UTF-8
    POLICY_VIOLATION = 1008  # too slow a reader, or over the rate limit
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011  # a bug in the server
    TRY_AGAIN_LATER = 1013  # at capacity


def may_be_sent_by_peer(code: int) -> bool:
    """True if a peer may send ``code`` in a close frame (RFC 6455 7.4, IANA registry)."""
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999
