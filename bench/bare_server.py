"""The baseline for ``bench/ingest.py``: a bare aiohttp app that only parses the JSON body.

Run as ``python -m bench.bare_server PORT``; it serves ``POST /api/v1/inbound`` on 127.0.0.1.
"""

from __future__ import annotations

import sys

from aiohttp import web


async def inbound(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response({"ok": True, "external_id": body.get("external_id")}, status=201)


def main() -> None:
    app = web.Application()
    app.router.add_post("/api/v1/inbound", inbound)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
