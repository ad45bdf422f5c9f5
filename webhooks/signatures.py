"""Signatures: constant-time checks of shared secrets, HMACs, and Standard Webhooks.

Standard Webhooks (https://www.standardwebhooks.com): ``webhook-signature`` is a
space-separated list of ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``,
keyed with the secret's bytes (a ``whsec_`` secret is base64 after the prefix).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Mapping

from crm_core.contracts import same_secret, wire_bytes

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


class SignatureError(Exception):
    """The request is not signed by whom it claims; the message says what is wrong."""


def same(given: str | bytes | None, expected: str | bytes) -> bool:
    """Constant-time equality of a presented secret and the configured one, as bytes;
    never raises (a header's bytes may be anything)."""
    return same_secret(given, expected)


def hmac_sha256_hex(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def secret_bytes(secret: str) -> bytes:
    """The signing key: base64 after ``whsec_``, else the secret's UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from exc
    return secret.encode()


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(24)).decode()


def standard_signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value (one ``v1`` signature)."""
    signed = wire_bytes(f"{webhook_id}.{timestamp}.") + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def standard_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secret, webhook_id, timestamp, body),
    }


def verify_standard(
    secret: str, headers: Mapping[str, str], body: bytes, now: int, tolerance: int = 300
) -> str:
    """Check a Standard Webhooks request; returns its ``webhook-id``."""
    webhook_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not webhook_id or not stamp or not signatures:
        raise SignatureError("webhook-id, webhook-timestamp and webhook-signature are required")
    timestamp = check_timestamp(stamp, now, tolerance)
    expected = standard_signature(secret, webhook_id, timestamp, body)
    for candidate in signatures.split():
        if same(candidate, expected):
            return webhook_id
    raise SignatureError("no webhook-signature matches")


def check_timestamp(stamp: str, now: int, tolerance: int) -> int:
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureError("the timestamp must be an integer of Unix seconds") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"the timestamp is more than {tolerance} s away from now")
    return timestamp


def verify_timestamped_hmac(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    now: int,
    tolerance: int = 300,
) -> None:
    """``X-Hook-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}." + body>``."""
    if not timestamp or not signature:
        raise SignatureError("X-Hook-Timestamp and X-Hook-Signature are required")
    stamp = check_timestamp(timestamp, now, tolerance)
    expected = "sha256=" + hmac_sha256_hex(secret.encode(), f"{stamp}.".encode() + body)
    if not same(signature.strip().lower(), expected):
        raise SignatureError("the signature does not match")
