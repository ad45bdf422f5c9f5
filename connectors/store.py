"""Where the channels keep the files clients send (and raw mail): content-addressed files.

One store for every connector; a key names the channel's kind of file and the bytes'
SHA-256, so the same bytes are stored once.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Protocol


class BlobStore(Protocol):
    async def put(self, data: bytes, kind: str = "files") -> str:
        """Store ``data``; answers its key (the same bytes give the same key)."""
        ...

    async def get(self, key: str) -> bytes:
        """The bytes under ``key``; raises ``KeyError`` when there are none."""
        ...


class FileStore:
    """``root/<kind>/<ab>/<sha256>``; written atomically, so a crash leaves no half file."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    async def put(self, data: bytes, kind: str = "files") -> str:
        digest = hashlib.sha256(data).hexdigest()
        key = f"{kind}/{digest[:2]}/{digest}"
        await asyncio.to_thread(self._write, self.root / key, data)
        return key

    async def get(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise KeyError(key) from exc

    async def delete(self, key: str) -> bool:
        """Remove the file under ``key``; False when there was none."""
        path = self.path(key)
        try:
            await asyncio.to_thread(path.unlink)
        except FileNotFoundError:
            return False
        return True

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError("key outside the store")
        return path

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(f".{os.getpid()}.tmp")
        temp.write_bytes(data)
        temp.replace(path)
