"""The picows peer: a websocket server in C with a callback per frame, a ceiling for Python.

Echo and one-room fan-out with no framework and no per-connection task, on uvloop:
``python picows_app.py --port PORT``. It has no permessage-deflate.
"""

from __future__ import annotations

import argparse
import json
import time

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server
from rooms import encode

ROOMS: dict[str, set[WSTransport]] = {}  # room name: its members


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


class Member(WSListener):
    def __init__(self) -> None:
        self.joined: set[str] = set()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if frame.msg_type != WSMsgType.TEXT:
            return
        event = json.loads(frame.get_payload_as_bytes())
        kind, room = event.get("type"), event.get("room", "")
        if kind == "message" and room in self.joined:
            now = int(time.time() * 1000)
            message = {"type": "message", "room": room, "text": event["text"], "ts": now}
            text = encode(message).encode()
            for member in ROOMS[room]:
                member.send(WSMsgType.TEXT, text)
        elif kind == "join":
            members = ROOMS.setdefault(room, set())
            members.add(transport)
            self.joined.add(room)
            joined = {"type": "joined", "room": room, "members": len(members)}
            transport.send(WSMsgType.TEXT, encode(joined).encode())
        elif kind == "ping":
            transport.send(WSMsgType.TEXT, b'{"type":"pong"}')

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        for room in self.joined:
            ROOMS[room].discard(transport)


def listener(request: WSUpgradeRequest) -> WSListener:
    return Echo() if request.path == b"/ws/echo" else Member()


async def main(port: int) -> None:
    server = await ws_create_server(listener, "127.0.0.1", port)
    await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(main(parser.parse_args().port))
