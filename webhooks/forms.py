"""A landing-page form: JSON, form-urlencoded or multipart; a token or a timestamped HMAC."""

from __future__ import annotations

from crm_core.enums import Channel
from webhooks.common import (
    BadSignatureError,
    HookRequest,
    Leads,
    body_hash,
    form_lead,
    idempotency_key,
    parse_form,
    presented_token,
)
from webhooks.signatures import SignatureError, same, verify_timestamped_hmac
from webhooks.sources import Source


def verify(source: Source, request: HookRequest, tolerance: int) -> None:
    secret = source.option("secret")
    if source.option("signing") == "hmac":
        try:
            verify_timestamped_hmac(
                secret,
                request.body,
                request.headers.get("X-Hook-Timestamp"),
                request.headers.get("X-Hook-Signature"),
                int(request.now.timestamp()),
                tolerance,
            )
        except SignatureError as exc:
            raise BadSignatureError(str(exc)) from None
    elif not same(presented_token(request), secret):
        raise BadSignatureError("send the source's token as X-Hook-Token (or ?token=)")


def handle(source: Source, request: HookRequest, tolerance: int) -> Leads:
    verify(source, request, tolerance)
    data = parse_form(request)
    key = idempotency_key(request)
    digest = None if key else body_hash(source.key, request.body)
    message = form_lead(
        data.fields,
        channel=Channel.FORM,
        source_key=source.key,
        external_id=f"key:{key}" if key else f"body:{digest}",
        now=request.now,
        mapping=source.fields,
        funnel=source.funnel,
        title=f"Form {source.key}",
        referrer=request.headers.get("Referer"),
        files=data.files,
    )
    return Leads((message,), body_hash=digest)
