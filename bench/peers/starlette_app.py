"""The Starlette peer on uvicorn (what FastAPI users run): echo and one-room fan-out.

Written as the Starlette and FastAPI docs show it (a connection manager that awaits each
member's send in turn), one uvicorn process with its defaults but compression, which is off
for every server of the benchmark: ``python starlette_app.py --port PORT``.
"""

from __future__ import annotations

import argparse

import uvicorn
from rooms import Rooms
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

ROOMS = Rooms(lambda ws, text: ws.send_text(text))


async def echo(ws: WebSocket) -> None:
    await ws.accept()
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await ws.send_text(message["text"])
        else:
            await ws.send_bytes(message["bytes"])


async def rooms(ws: WebSocket) -> None:
    await ws.accept()
    joined: set[str] = set()
    try:
        while True:
            await ROOMS.handle(ws, joined, await ws.receive_text())
    except WebSocketDisconnect:
        pass
    finally:
        ROOMS.leave(ws, joined)


app = Starlette(routes=[WebSocketRoute("/ws/echo", echo), WebSocketRoute("/ws", rooms)])

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws_per_message_deflate=False)
