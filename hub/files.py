"""The attachment store as the inbox reads it: one shared folder by default
(``media_dir``), plus any folder a channel was configured with on its own."""

from __future__ import annotations

from pathlib import Path

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
