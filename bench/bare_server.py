"""The baselines of the benchmarks: a bare aiohttp app that does the least a server must.

Run as ``python -m bench.bare_server PORT``; on 127.0.0.1 it serves
``POST /api/v1/inbound`` (parses the JSON body; ``bench/ingest.py``) and the WebSocket
``GET /ws`` (``bench/widget.py``: each JSON text frame is parsed and answered with one
frame, a ``welcome`` for a ``hello`` and an ``ack`` for anything else).
"""

from __future__ import annotations

import json
import sys
from itertools import count

from aiohttp import WSMsgType, web

MAX_FRAME_BYTES = 64 * 1024  # the widget socket's own limit
_message_ids = count(1)


async def inbound(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response({"ok": True, "external_id": body.get("external_id")}, status=201)


async def echo_socket(request: web.Request) -> web.WebSocketResponse:
    socket = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES)
    await socket.prepare(request)
    async for message in socket:
        if message.type is not WSMsgType.TEXT:
            break
        frame = json.loads(message.data)
        if frame.get("type") == "hello":
            await socket.send_json({"type": "welcome", "token": None, "messages": []})
            continue
        client_id = frame.get("id")
        stored = {"id": next(_message_ids), "client_id": client_id, "text": frame.get("text")}
        await socket.send_json({"type": "ack", "id": client_id, "message": stored})
    return socket


def main() -> None:
    app = web.Application()
    app.router.add_post("/api/v1/inbound", inbound)
    app.router.add_get("/ws", echo_socket)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
