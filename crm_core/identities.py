"""Identities are normalized once, here (DESIGN.md rule 5)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import phonenumbers

from crm_core.contracts import IdentityRef
from crm_core.enums import IdentityKind

_EMAIL_LOCAL = re.compile(r"^[^\s@]{1,64}$")
_TELEGRAM_ID = re.compile(r"^-?\d{1,20}$")
_PLAIN_ID = re.compile(r"^[\w.:\-]{1,200}$")
# What IDNA reads as a dot between labels (after NFKC, U+FF0E is already "." and U+FF61 is U+3002).
_FULL_STOPS = str.maketrans(dict.fromkeys("\u3002\uff0e\uff61", "."))


class InvalidIdentityError(ValueError):
    """An identity value that cannot be normalized; says which and why."""

    def __init__(self, kind: IdentityKind, value: str, reason: str) -> None:
        super().__init__(f"{kind.value} {value!r}: {reason}")
        self.kind = kind
        self.value = value
        self.reason = reason


@lru_cache(maxsize=4096)  # a client writes again and again from the same number
def normalize_phone(raw: str, default_region: str) -> str:
    """E.164 for any way people write a number: ``8 (916) 123-45-67`` -> ``+79161234567``."""
    text = raw.strip()
    digits = re.sub(r"\D", "", text)
    if not digits:
        raise InvalidIdentityError(IdentityKind.PHONE, raw, "no digits")
    # "79161234567" has no "+" but already carries its country code.
    candidates = [text]
    if not text.startswith(("+", "00")) and not text.startswith("8"):
        candidates.append("+" + digits)
    if text.startswith("00"):
        candidates.insert(0, "+" + digits[2:])
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, default_region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    raise InvalidIdentityError(IdentityKind.PHONE, raw, "not a valid phone number")


def normalize_email(raw: str) -> str:
    """Lower-cased, the domain in IDNA: ``Ivan@Пример.РФ`` -> ``ivan@xn--e1afmkfd.xn--p1ai``.

    One address, however it is typed: full-width forms fold (NFKC: ``ｂoris`` is
    ``boris``), ideographic full stops are dots, and the domain's trailing dot goes.
    """
    text = unicodedata.normalize("NFKC", raw).translate(_FULL_STOPS).strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or not _EMAIL_LOCAL.match(local):
        raise InvalidIdentityError(IdentityKind.EMAIL, raw, "not an email address")
    try:
        ascii_domain = domain.rstrip(".").encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidIdentityError(IdentityKind.EMAIL, raw, "the domain is not valid") from exc
    if "." not in ascii_domain:
        raise InvalidIdentityError(IdentityKind.EMAIL, raw, "the domain has no dot")
    return f"{local.lower()}@{ascii_domain.lower()}"


def normalize(identity: IdentityRef, default_region: str) -> IdentityRef:
    """The canonical form of one identity; raises :class:`InvalidIdentityError`."""
    kind = identity.kind
    value = identity.value
    if kind is IdentityKind.PHONE or kind is IdentityKind.WHATSAPP:
        return IdentityRef(kind, normalize_phone(value, default_region))
    if kind is IdentityKind.EMAIL:
        return IdentityRef(kind, normalize_email(value))
    stripped = value.strip()
    if kind is IdentityKind.TELEGRAM:
        if not _TELEGRAM_ID.match(stripped):
            raise InvalidIdentityError(kind, value, "a Telegram identity is the numeric user id")
        return IdentityRef(kind, str(int(stripped)))
    if not _PLAIN_ID.match(stripped):
        raise InvalidIdentityError(kind, value, "use 1-200 letters, digits and . : _ -")
    return IdentityRef(kind, stripped)
