"""The aiohttp peer: echo and one-room fan-out, as aiohttp's docs write websocket handlers.

One process on uvloop, aiohttp's defaults but compression, which is off for every server of
the benchmark: ``python aiohttp_app.py --port PORT``.
"""

from __future__ import annotations

import argparse

import uvloop
from aiohttp import WSMsgType, web
from rooms import Rooms

ROOMS = web.AppKey("rooms", Rooms)


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            await ws.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await ws.send_bytes(message.data)
    return ws


async def rooms(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    all_rooms = request.app[ROOMS]
    joined: set[str] = set()
    try:
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await all_rooms.handle(ws, joined, message.data)
    finally:
        all_rooms.leave(ws, joined)
    return ws


def make_app() -> web.Application:
    app = web.Application()
    app[ROOMS] = Rooms(lambda ws, text: ws.send_str(text))
    app.add_routes([web.get("/ws/echo", echo), web.get("/ws", rooms)])
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    web.run_app(make_app(), host="127.0.0.1", port=port, print=None, loop=uvloop.new_event_loop())
