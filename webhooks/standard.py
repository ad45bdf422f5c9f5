"""A generic receiver for Standard Webhooks senders: the signature, then ``data`` as a form."""

from __future__ import annotations

from crm_core.enums import Channel
from webhooks.common import (
    BadSignatureError,
    HookRequest,
    Leads,
    as_text,
    form_lead,
    json_body,
)
from webhooks.signatures import SignatureError, verify_standard
from webhooks.sources import Source


def handle(source: Source, request: HookRequest, tolerance: int) -> Leads:
    try:
        webhook_id = verify_standard(
            source.option("secret"),
            request.headers,
            request.body,
            int(request.now.timestamp()),
            tolerance,
        )
    except (SignatureError, ValueError) as exc:
        raise BadSignatureError(str(exc)) from None
    doc = json_body(request)
    inner = doc.get("data")
    data = inner if isinstance(inner, dict) else doc
    fields = {str(k): as_text(v) for k, v in data.items()}
    message = form_lead(
        fields,
        channel=Channel.FORM,
        source_key=source.key,
        external_id=f"webhook:{webhook_id[:150]}",
        now=request.now,
        mapping=source.fields,
        funnel=source.funnel,
        title=f"Webhook {doc.get('type') or source.key}",
    )
    return Leads((message,))
