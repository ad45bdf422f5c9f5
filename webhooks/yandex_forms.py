"""Yandex Forms: its integration's HTTP request, as JSON-RPC 2.0 POST (``params``) or a
JSON body of your own; the source's token in a header the integration adds.
"""

from __future__ import annotations

import json

from crm_core.enums import Channel
from webhooks.common import (
    Answer,
    BadSignatureError,
    HookRequest,
    Leads,
    MalformedBodyError,
    as_text,
    body_hash,
    form_lead,
    idempotency_key,
    json_body,
    presented_token,
)
from webhooks.signatures import same
from webhooks.sources import Source

_ID_FIELDS = ("answer_id", "answer.id")


def handle(source: Source, request: HookRequest) -> Leads:
    if not same(presented_token(request), source.option("secret")):
        raise BadSignatureError("send the source's token as X-Hook-Token (or ?token=)")
    doc = json_body(request)
    rpc = doc.get("jsonrpc") == "2.0"
    params = doc.get("params") if rpc else doc
    if not isinstance(params, dict):
        raise MalformedBodyError("params: an object is required")
    fields = {str(k): as_text(v) for k, v in params.items()}
    answer_id = next((fields[k] for k in _ID_FIELDS if fields.get(k)), None)
    key = answer_id or idempotency_key(request)
    digest = None if key else body_hash(source.key, request.body)
    message = form_lead(
        fields,
        channel=Channel.FORM,
        source_key=source.key,
        external_id=f"answer:{key}" if key else f"body:{digest}",
        now=request.now,
        mapping=source.fields,
        funnel=source.funnel,
        title=f"Yandex Form {doc.get('method') or source.key}" if rpc else "Yandex Form",
        skip=set(_ID_FIELDS),
    )
    answer = (
        Answer(
            json.dumps({"jsonrpc": "2.0", "result": "ok", "id": doc.get("id")}),
            content_type="application/json",
        )
        if rpc
        else Answer("ok")
    )
    return Leads((message,), answer=answer, body_hash=digest)
