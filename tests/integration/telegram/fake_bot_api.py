"""A local Bot API server speaking the documented JSON, for tests and the bench.

It keeps what the real one keeps: unconfirmed updates are served again to the next
``getUpdates`` until an ``offset`` past them confirms them; a set webhook makes
``getUpdates`` answer 409. Errors can be scripted per chat (429 with ``retry_after``,
403 for a user who blocked the bot, 5xx).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Json = dict[str, Any]
_FIRST_UPDATE_ID = 700_000_000


@dataclass
class Failure:
    code: int
    description: str
    retry_after: int | None = None


@dataclass
class BotState:
    token: str
    bot_id: int
    username: str
    updates: list[Json] = field(default_factory=list)
    sent: list[Json] = field(default_factory=list)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    failures: dict[int, list[Failure]] = field(default_factory=dict)
    blocked: set[int] = field(default_factory=set)
    webhook: Json | None = None
    get_updates_calls: int = 0
    confirmed_offset: int = 0
    calls: list[str] = field(default_factory=list)
    broken_downloads: set[str] = field(default_factory=set)  # answer 502
    gone_downloads: set[str] = field(default_factory=set)  # answer 404
    flaky_downloads: dict[str, int] = field(default_factory=dict)  # answer 500 this often
    downloads: list[str] = field(default_factory=list)  # the paths asked for, in order
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(_FIRST_UPDATE_ID))
    _message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def push(self, update: Json) -> int:
        """Queue an update (its ``update_id`` is assigned here); returns the id."""
        update_id = next(self._ids)
        self.updates.append({"update_id": update_id, **update})
        self._arrived.set()
        return update_id

    def add_file(self, file_id: str, data: bytes, path: str | None = None) -> None:
        self.files[file_id] = (path or f"documents/{file_id}.bin", data)

    def pending(self) -> list[Json]:
        return [u for u in self.updates if u["update_id"] >= self.confirmed_offset]

    def next_message_id(self) -> int:
        return next(self._message_ids)


def user(user_id: int, first_name: str = "Ivan", last_name: str | None = "Petrov") -> Json:
    body: Json = {"id": user_id, "is_bot": False, "first_name": first_name}
    if last_name:
        body["last_name"] = last_name
    return body


def message(sender: Json, message_id: int, date: int = 1_780_000_000, **content: Any) -> Json:
    """A private-chat message from ``sender`` with the given content fields."""
    chat = {"id": sender["id"], "type": "private", "first_name": sender["first_name"]}
    return {"message_id": message_id, "date": date, "chat": chat, "from": sender, **content}


class FakeBotApi:
    """``await start()`` → base URL for ``TelegramAPIServer.from_base``."""

    def __init__(self) -> None:
        self.bots: dict[str, BotState] = {}
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self.app = app

    def add_bot(self, token: str, username: str = "sales_bot") -> BotState:
        bot_id = int(token.split(":", 1)[0])
        state = self.bots[token] = BotState(token, bot_id, username)
        return state

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        port = server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- the API

    async def _method(self, request: web.Request) -> web.Response:
        state = self.bots.get(request.match_info["token"])
        if state is None:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params, uploads = await _params(request)
        state.calls.append(method)
        handler = getattr(self, "_" + method, None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        result: web.Response = await handler(state, params, uploads)
        return result

    async def _getMe(self, state: BotState, params: Json, uploads: Json) -> web.Response:  # noqa: N802
        return _ok(
            {"id": state.bot_id, "is_bot": True, "first_name": "Sales", "username": state.username}
        )

    async def _getUpdates(self, state: BotState, params: Json, uploads: Json) -> web.Response:  # noqa: N802
        state.get_updates_calls += 1
        if state.webhook is not None:
            return _error(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = int(params.get("offset") or 0)
        if offset:
            state.confirmed_offset = max(state.confirmed_offset, offset)
            state.updates = [u for u in state.updates if u["update_id"] >= offset]
        limit = max(1, min(100, int(params.get("limit") or 100)))
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + timeout
        while not state.updates and time.monotonic() < deadline:
            state._arrived.clear()
            try:
                await asyncio.wait_for(state._arrived.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        return _ok(state.updates[:limit])

    async def _setWebhook(self, state: BotState, params: Json, uploads: Json) -> web.Response:  # noqa: N802
        state.webhook = dict(params)
        return _ok(True)

    async def _deleteWebhook(self, state: BotState, params: Json, uploads: Json) -> web.Response:  # noqa: N802
        state.webhook = None
        if str(params.get("drop_pending_updates", "")).lower() == "true":
            state.updates.clear()
        return _ok(True)

    async def _getFile(self, state: BotState, params: Json, uploads: Json) -> web.Response:  # noqa: N802
        found = state.files.get(str(params.get("file_id")))
        if found is None:
            return _error(400, "Bad Request: invalid file_id")
        path, data = found
        return _ok(
            {
                "file_id": params["file_id"],
                "file_unique_id": "u" + str(params["file_id"]),
                "file_size": len(data),
                "file_path": path,
            }
        )

    async def _sendMessage(self, state: BotState, params: Json, uploads: Json) -> web.Response:  # noqa: N802
        return self._send(state, params, {"text": params.get("text", "")})

    async def _sendDocument(self, state: BotState, params: Json, uploads: Json) -> web.Response:  # noqa: N802
        ref = str(params.get("document", ""))
        upload = uploads.get(ref.removeprefix("attach://"))
        if upload is None:
            return _error(400, "Bad Request: there is no document in the request")
        name, data = upload
        content: Json = {
            "document": {
                "file_id": f"doc-{len(state.sent)}",
                "file_unique_id": f"udoc-{len(state.sent)}",
                "file_name": name,
                "file_size": len(data),
            },
            "data": data,
        }
        if params.get("caption"):
            content["caption"] = params["caption"]
        return self._send(state, params, content)

    def _send(self, state: BotState, params: Json, content: Json) -> web.Response:
        chat_id = int(params["chat_id"])
        queue = state.failures.get(chat_id)
        if queue:
            failure = queue.pop(0)
            return _error(failure.code, failure.description, failure.retry_after)
        if chat_id in state.blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        sent = {"message_id": state.next_message_id(), "chat_id": chat_id, **content}
        state.sent.append(sent)
        shown = {k: v for k, v in content.items() if k != "data"}
        return _ok(
            {
                "message_id": sent["message_id"],
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                **shown,
            }
        )

    async def _file(self, request: web.Request) -> web.Response:
        state = self.bots.get(request.match_info["token"])
        if state is None:
            return web.Response(status=401)
        state.downloads.append(request.match_info["path"])
        if state.flaky_downloads.get(request.match_info["path"], 0) > 0:
            state.flaky_downloads[request.match_info["path"]] -= 1
            return web.Response(status=500)
        if request.match_info["path"] in state.broken_downloads:
            return web.Response(status=502)
        if request.match_info["path"] in state.gone_downloads:
            return web.Response(status=404)
        for path, data in state.files.values():
            if path == request.match_info["path"]:
                return web.Response(body=data)
        return web.Response(status=404)


async def _params(request: web.Request) -> tuple[Json, Json]:
    params: Json = dict(request.query)
    uploads: Json = {}
    if request.content_type == "application/json":
        params.update(await request.json())
    elif request.can_read_body:
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                uploads[key] = (value.filename, value.file.read())
            else:
                params[key] = _decode(str(value))
    return params, uploads


def _decode(value: str) -> Any:
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(code: int, description: str, retry_after: int | None = None) -> web.Response:
    body: Mapping[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        body = {**body, "parameters": {"retry_after": retry_after}}
    return web.json_response(body, status=code)


def preload(state: BotState, count: int, senders: int = 500) -> None:
    """``count`` private text messages from ``senders`` different people."""
    for i in range(count):
        sender = user(10_000 + i % senders, f"Client{i % senders}", None)
        state.push({"message": message(sender, 1 + i, text=f"Здравствуйте! Вопрос №{i}")})


async def _serve(tokens: list[str], count: int) -> None:
    server = FakeBotApi()
    for token in tokens:
        preload(server.add_bot(token), count)
    print(await server.start(), flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
    finally:
        await server.close()


def main() -> None:
    """``python -m tests.integration.telegram.fake_bot_api --tokens A,B --updates N``: serve
    N queued updates per bot and print the base URL; stop when stdin closes."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--updates", type=int, default=10_000)
    args = parser.parse_args()
    asyncio.run(_serve(args.tokens.split(","), args.updates))


if __name__ == "__main__":
    main()
