"""A client's file name in a download's Content-Disposition: no control, invisible or bidi
character reaches the browser's save dialog, in either parameter."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from hub.files import content_disposition, download_name

RLO = "\u202e"


def _parameters(header: str) -> tuple[str, str, str]:
    disposition, plain, extended = header.split("; ")
    assert plain.startswith('filename="'), header
    assert plain.endswith('"'), header
    assert extended.startswith("filename*=UTF-8''"), header
    return disposition, plain[len('filename="') : -1], unquote(extended[len("filename*=UTF-8''") :])


def test_a_right_to_left_override_cannot_spoof_the_extension() -> None:
    header = content_disposition("attachment", f"invoice{RLO}gnp.exe.html")
    disposition, plain, real = _parameters(header)
    assert disposition == "attachment"
    assert plain == real == "invoice_gnp.exe.html"
    assert header.isascii()


@pytest.mark.parametrize(
    "char",
    [
        *(chr(c) for c in range(0x202A, 0x202F)),  # embeddings, overrides, PDF
        *(chr(c) for c in range(0x2066, 0x206A)),  # isolates
        "\u200e",  # LRM
        "\u200f",  # RLM
        "\u061c",  # ALM
        "\u200b",  # zero-width space
        "\ufeff",  # BOM
        "\u2028",  # line separator
        "\u2029",  # paragraph separator
        "\x00",
        "\n",
        "\r",
        "\x7f",
        "\x85",
        "/",
        "\\",
        '"',
        "\ud800",  # a lone surrogate (JSON allows one) does not break the encoding
    ],
)
def test_hidden_and_path_characters_become_underscores(char: str) -> None:
    assert download_name(f"a{char}b.txt") == "a_b.txt"
    _disposition, plain, real = _parameters(content_disposition("inline", f"a{char}b.txt"))
    assert plain == real == "a_b.txt"


def test_a_readable_name_stays_readable() -> None:
    _disposition, plain, real = _parameters(content_disposition("attachment", "прайс 2024.pdf"))
    assert real == "прайс 2024.pdf"
    assert plain == "_____ 2024.pdf"
    # Right-to-left script itself is fine: only the invisible controls go.
    assert download_name("חשבונית.pdf") == "חשבונית.pdf"


def test_an_empty_or_blank_name_is_file() -> None:
    assert download_name("") == "file"
    assert download_name(" \u202e ") == "_"
    assert download_name("   ") == "file"
    assert len(download_name("x" * 1000)) == 200
