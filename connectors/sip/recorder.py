"""The recording of a connected call: both legs feed one WAV recorder (SIP thread only).

pjsua writes a WAV's sizes (and the last buffered audio) when the conference bridge lets
go of the recorder's port, on its next clock tick after the recorder is destroyed: a
call is posted to the hub once :meth:`CallRecorder.finished` says the file is whole
(or after :data:`CLOSING_SECONDS`; the hub mends a header cut short).
"""

from __future__ import annotations

import logging
import re
import struct
import time
from pathlib import Path

import pjsua2 as pj

log = logging.getLogger(__name__)
CLOSING_SECONDS = 1.0  # how long a recording may take to be finished by pjsua
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def spool_file(spool: Path, call_id: str, prefix: str = "") -> Path:
    """The call's file in the line's spool folder (a Call-ID may hold any character)."""
    return spool / f"{prefix}{_UNSAFE.sub('_', call_id)[:100]}.wav"


class CallRecorder:
    def __init__(self, path: Path, recorder: pj.AudioMediaRecorder) -> None:
        self.path = path
        self._recorder: pj.AudioMediaRecorder | None = recorder
        self._closing_until: float | None = None

    @classmethod
    def start(cls, path: Path, sides: tuple[pj.AudioMedia, ...]) -> CallRecorder:
        """Record ``sides`` (the conference bridge mixes them) into ``path``; raises
        ``pj.Error`` when pjsua cannot."""
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(str(path))
        for audio in sides:
            audio.startTransmit(recorder)
        return cls(path, recorder)

    def stop(self) -> None:
        """Let go of the recorder: pjsua finishes the file on its next clock tick."""
        if self._recorder is not None:
            self._recorder = None
            self._closing_until = time.monotonic() + CLOSING_SECONDS

    def finished(self) -> bool:
        """The file is whole, or waiting longer is pointless (stopped, and the time is up)."""
        if self._recorder is not None:
            return False
        if finished_wav(self.path):
            return True
        if self._closing_until is not None and time.monotonic() < self._closing_until:
            return False
        log.warning("SIP: the recording %s was not finished by pjsua", self.path.name)
        return True

    def give_up_waiting(self) -> None:
        self._closing_until = 0.0


def finished_wav(path: Path) -> bool:
    """pjsua closed the WAV: its RIFF size is the file's (it is 0 while recording)."""
    try:
        with path.open("rb") as file:
            head = file.read(8)
        size = path.stat().st_size
    except OSError:
        return True  # nothing to wait for
    return len(head) == 8 and struct.unpack("<I", head[4:8])[0] == size - 8
