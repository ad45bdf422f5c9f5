"""Tilda: form-urlencoded leads; the ``test=test`` check; ``tranid`` is the lead's key.

An API key, when configured, is checked in the header or field Tilda is told to use
(``api_key_name``); ``tranid`` and ``formid`` stay in the lead's text.

Tilda sends the page's cookies in ``COOKIES`` (``name=value; name2=value2``). Its page
script keeps the UTM tags of the visit's landing URL in the cookie ``TILDAUTM``: each
``utm_*=value`` pair as the URL had it, followed by ``|||``, the whole URL-encoded
(``utm_source%3Dyandex%7C%7C%7Cutm_medium%3Dcpc%7C%7C%7C``). A form whose fields carry
no UTM tag takes them from there.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, unquote_plus

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
_UTM_COOKIE = "TILDAUTM"
# Between pairs: Tilda's "|||"; "&" (and an HTML-escaped "&amp;") from other scripts.
_PAIRS = re.compile(r"\|\|\||&(?:amp;)?")
_MAX_COOKIE = 4096  # a browser keeps no longer cookie


def tilda_utm(cookies: str) -> dict[str, str]:
    """The ``utm_*`` tags of the ``TILDAUTM`` cookie in a ``COOKIES`` field; never raises."""
    raw = next(
        (
            value
            for name, _, value in (part.strip().partition("=") for part in cookies.split(";"))
            if name == _UTM_COOKIE
        ),
        "",
    )
    tags: dict[str, str] = {}
    for pair in _PAIRS.split(unquote(raw[:_MAX_COOKIE], errors="replace")):
        name, _, value = pair.partition("=")
        name = name.strip().lower()
        value = unquote_plus(value, errors="replace").strip()
        if name.startswith("utm_") and value and name not in tags:
            tags[name] = value[:200]
    return tags


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
        utm_fallback=tilda_utm(data.fields.get("COOKIES", "")),
    )
    return Leads((message,), body_hash=digest)
