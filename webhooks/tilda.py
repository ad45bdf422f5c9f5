"""Tilda: form-urlencoded leads; the ``test=test`` check; ``tranid`` is the lead's key.

An API key, when configured, is checked in the header or field Tilda is told to use
(``api_key_name``); ``tranid`` and ``formid`` stay in the lead's text.
"""

from __future__ import annotations

from crm_core.enums import Channel
from webhooks.common import (
    Answer,
    BadSignatureError,
    HookRequest,
    Leads,
    body_hash,
    form_lead,
    parse_form,
)
from webhooks.signatures import same
from webhooks.sources import Source

# Tilda's own fields that are not the client's words.
_SKIP = {"COOKIES", "test"}


def handle(source: Source, request: HookRequest) -> Answer | Leads:
    data = parse_form(request)
    if data.fields.get("test") == "test":
        return Answer("ok")
    api_key = source.option("api_key")
    key_name = source.option("api_key_name", "api_key")
    if api_key:
        given = request.headers.get(key_name) or data.fields.get(key_name)
        if not same(given, api_key):
            raise BadSignatureError(f"the Tilda API key ({key_name}) does not match")
    tranid = data.fields.get("tranid")
    digest = None if tranid else body_hash(source.key, request.body)
    form = data.fields.get("formname") or data.fields.get("formid") or ""
    message = form_lead(
        data.fields,
        channel=Channel.FORM,
        source_key=source.key,
        external_id=f"tranid:{tranid}" if tranid else f"body:{digest}",
        now=request.now,
        mapping=source.fields,
        funnel=source.funnel,
        title=f"Tilda form {form}".strip(),
        referrer=request.headers.get("Referer"),
        skip=_SKIP | {key_name},
        files=data.files,
    )
    return Leads((message,), body_hash=digest)
