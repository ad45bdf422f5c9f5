"""HTML mail to text (and to sanitized HTML for display); new text apart from quotes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

import nh3

_BLOCK = {
    "p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "pre", "table", "ul", "ol", "hr", "section", "article",
}  # fmt: skip
_SKIP = {"script", "style", "head", "title"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._quote = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag == "blockquote":
            self._quote += 1
            self.parts.append("\n")
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "blockquote":
            self._quote = max(0, self._quote - 1)
            self.parts.append("\n")
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        text = re.sub(r"\s+", " ", data)
        if self._quote:
            text = "\n".join("> " + line for line in text.split("\n"))
        self.parts.append(text)


def html_to_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def sanitize_html(html: str) -> str:
    """Safe to show in the inbox: no scripts, no handlers, no remote tricks."""
    return nh3.clean(html)


@dataclass(frozen=True, slots=True)
class SplitText:
    new: str
    quoted: str = ""
    signature: str = ""


# Lines that start the quoted original in replies from common mail programs.
_ATTRIBUTION = re.compile(
    r"^(On .{0,200} wrote:|.{0,200}\b(пишет|написал|написала)\s*:"
    r"|-{2,} ?(Original Message|Исходное сообщение|Пересылаемое сообщение|Forwarded message) ?-{2,}"
    r"|(From|От):\s.*@.*)\s*$",
    re.IGNORECASE,
)


def split_reply(text: str) -> SplitText:
    """The client's new words apart from the quoted earlier mail and the signature."""
    lines = text.replace("\r\n", "\n").split("\n")
    cut = len(lines)
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(">") or _ATTRIBUTION.match(stripped):
            # A quote block counts only when nothing but quotes and blanks follow it
            # (an inline answer between quotes keeps everything as new text).
            rest = [x.strip() for x in lines[i + 1 :] if x.strip()]
            if all(x.startswith(">") or _ATTRIBUTION.match(x) for x in rest) or _ATTRIBUTION.match(
                stripped
            ):
                cut = i
                break
    body, quoted = lines[:cut], lines[cut:]
    signature: list[str] = []
    for i, line in enumerate(body):
        if line.rstrip() in {"--", "-- "} or line == "-- ":
            body, signature = body[:i], body[i + 1 :]
            break
    return SplitText(
        new="\n".join(body).strip(),
        quoted="\n".join(quoted).strip(),
        signature="\n".join(signature).strip(),
    )
