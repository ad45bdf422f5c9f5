"""The attachment store as the inbox reads it: one shared folder by default
(``media_dir``), plus any folder a channel was configured with on its own."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from connectors.store import FileStore


class FileStores:
    def __init__(self, default_root: str) -> None:
        self._stores: dict[Path, FileStore] = {}
        self.default = self.add(default_root)

    def add(self, root: str) -> FileStore:
        """The store at ``root`` (one object per folder), remembered for downloads."""
        path = Path(root).resolve()
        if path not in self._stores:
            self._stores[path] = FileStore(root)
        return self._stores[path]

    async def get(self, key: str) -> bytes:
        """The bytes under ``key`` from whichever store holds them; ``KeyError`` if none."""
        for store in self._stores.values():
            try:
                return await store.get(key)
            except (KeyError, ValueError):
                continue
        raise KeyError(key)


FILES = web.AppKey("files", FileStores)

# Controls (C0, DEL, C1), format characters (bidi embeddings, overrides, isolates and marks,
# zero-width and invisible characters), line and paragraph separators, lone surrogates.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_PATH = frozenset('/\\"')
_NOT_PLAIN_ASCII = re.compile(r"[^A-Za-z0-9._ -]")


def download_name(name: str) -> str:
    """A client's file name as a save dialog may show it: every control, invisible or
    bidi character (a right-to-left override, U+202E, before ``gnp.exe.html`` shows it as
    "lmth.exe.png") and every path separator becomes ``_``."""
    cleaned = "".join(
        "_" if char in _PATH or unicodedata.category(char) in _HIDDEN else char
        for char in name[:200]
    ).strip()
    return cleaned or "file"


def content_disposition(disposition: str, name: str) -> str:
    """``attachment; filename="..."; filename*=UTF-8''...``: the safe name, in plain ASCII
    for old clients and percent-encoded UTF-8 for the rest."""
    safe = download_name(name)
    plain = _NOT_PLAIN_ASCII.sub("_", safe)[:120]
    return f"{disposition}; filename=\"{plain}\"; filename*=UTF-8''{quote(safe, safe='')}"
