"""Text from the bytes of real mail: declared charsets, wrong ones and missing ones.

Russian mail still arrives in windows-1251, koi8-r and iso-8859-5, often declared
wrongly (or not at all). A declared charset is trusted when it decodes strictly and,
for the single-byte families where any byte "decodes", when the text reads like
Russian at least as well as under the usual alternatives.
"""

from __future__ import annotations

import codecs

_CYRILLIC_GUESSES = ("utf-8", "windows-1251", "koi8-r", "iso-8859-5")
# Single-byte charsets under which any byte sequence decodes: a wrong declaration
# is only visible in how the text reads.
_SINGLE_BYTE = {
    "windows-1251",
    "cp1251",
    "koi8-r",
    "koi8_r",
    "iso-8859-5",
    "iso8859-5",
    "iso-8859-1",
    "iso8859-1",
    "latin-1",
    "latin1",
    "us-ascii",
    "ascii",
    "windows-1252",
    "cp1252",
}
_SINGLE_BYTE_NAMES = {codecs.lookup(c).name for c in _SINGLE_BYTE}
_LATIN = {"iso8859-1", "cp1252", "ascii", "latin-1"}
_FREQUENT = set("оеаинтсрвлкмдп")
_LOWER = {chr(c) for c in range(ord("а"), ord("я") + 1)} | {"ё"}
_UPPER = {chr(c) for c in range(ord("А"), ord("Я") + 1)} | {"Ё"}


def _known(charset: str | None) -> str | None:
    if not charset:
        return None
    try:
        return codecs.lookup(charset.strip().strip('"').lower()).name
    except LookupError:
        return None


def _mostly_high(data: bytes) -> bool:
    """Cyrillic in a single-byte charset: most letters are bytes >= 0x80."""
    letters = [b for b in data if b >= 0x80 or chr(b).isalpha()]
    return bool(letters) and sum(b >= 0x80 for b in letters) > 0.3 * len(letters)


def _score(text: str) -> int:
    """How much ``text`` reads like natural (mostly lowercase) Russian or plain ASCII."""
    score = 0
    for char in text:
        if char in _FREQUENT:
            score += 3
        elif char in _LOWER:
            score += 2
        elif char in _UPPER:
            score += 0
        elif ord(char) >= 0x80 and not char.isalpha():
            score -= 3
        elif ord(char) >= 0x80:
            score -= 1
    return score


def decode_text(data: bytes, declared: str | None = None) -> str:
    """The best reading of ``data``; never raises (undecodable bytes become U+FFFD)."""
    charset = _known(declared)
    if charset is not None and charset not in _SINGLE_BYTE_NAMES:
        try:
            return data.decode(charset)
        except UnicodeDecodeError:
            pass  # declared wrongly: guess below
    if all(b < 0x80 for b in data):
        return data.decode("ascii")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if charset in _LATIN and not _mostly_high(data):
        return data.decode(charset, errors="replace")  # Western mail: a few accents
    candidates: list[tuple[int, int, str]] = []
    order = [charset] if charset is not None else []
    order += [c for c in _CYRILLIC_GUESSES[1:] if c != charset]
    for rank, name in enumerate(order):
        text = data.decode(name, errors="replace")
        # The declared charset wins ties (rank 0), then the commoner guesses.
        candidates.append((_score(text), -rank, text))
    return max(candidates)[2]


def fix_header(value: str) -> str:
    """A header the ``email`` package read with raw 8-bit bytes (as surrogates), decoded."""
    if not any("\udc80" <= char <= "\udcff" for char in value):
        return value
    return decode_text(value.encode("utf-8", errors="surrogateescape"))
