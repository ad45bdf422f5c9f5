"""Zadarma cloud PBX notifications: ``zd_echo``, ``NOTIFY_START``, ``NOTIFY_END``...

The ``Signature`` header is base64 of the *hex* HMAC-SHA1 (PHP's ``hash_hmac``) of the
event's fields, keyed with the API secret. A call that ends unanswered becomes a
missed call (a call record whose call-back task the core creates, as for a SIP line);
an answered one a message and a call record on the contact's conversation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta

from crm_core.contracts import CallRecord, InboundMessage
from crm_core.enums import CallDisposition, Channel, Direction
from webhooks.common import (
    Answer,
    BadSignatureError,
    HookRequest,
    Leads,
    MalformedBodyError,
    identities,
    parse_form,
)
from webhooks.signatures import same
from webhooks.sources import Source

_DISPOSITIONS = {
    "answered": CallDisposition.ANSWERED,
    "busy": CallDisposition.BUSY,
    "cancel": CallDisposition.MISSED,
    "no answer": CallDisposition.MISSED,
}
# The fields each event signs, in order.
SIGNED = {
    "NOTIFY_START": ("caller_id", "called_did", "call_start"),
    "NOTIFY_INTERNAL": ("caller_id", "called_did", "call_start"),
    "NOTIFY_END": ("caller_id", "called_did", "call_start"),
    "NOTIFY_ANSWER": ("caller_id", "destination", "call_start"),
    "NOTIFY_OUT_START": ("internal", "destination", "call_start"),
    "NOTIFY_OUT_END": ("internal", "destination", "call_start"),
    "NOTIFY_RECORD": ("pbx_call_id", "call_id_with_rec"),
}


def signature(secret: str, data: str) -> str:
    digest = hmac.new(secret.encode(), data.encode(), hashlib.sha1).hexdigest()
    return base64.b64encode(digest.encode()).decode()


def handle(source: Source, request: HookRequest) -> Answer | Leads:
    echo = request.query.get("zd_echo")
    if echo is not None:
        return Answer(echo[:200])
    fields = parse_form(request).fields
    event = fields.get("event", "")
    if event not in SIGNED:
        raise MalformedBodyError(f"event: one of {', '.join(sorted(SIGNED))}")
    data = "".join(fields.get(name, "") for name in SIGNED[event])
    if not same(request.headers.get("Signature"), signature(source.option("api_secret"), data)):
        raise BadSignatureError("the Signature header does not match")
    if event != "NOTIFY_END":
        return Answer("ok")
    return Leads((call_message(source, fields, request),))


def call_message(source: Source, fields: dict[str, str], request: HookRequest) -> InboundMessage:
    call_id = fields.get("pbx_call_id")
    caller = fields.get("caller_id")
    if not call_id or not caller:
        raise MalformedBodyError("NOTIFY_END needs pbx_call_id and caller_id")
    disposition = fields.get("disposition", "")
    try:
        seconds = int(fields.get("duration") or 0)
    except ValueError:
        raise MalformedBodyError("duration: an integer of seconds") from None
    number = fields.get("called_did") or "the PBX"
    if disposition == "answered":
        extension = fields.get("internal")
        text = (
            f"Answered call to {number}"
            + (f", extension {extension}" if extension else "")
            + f", {seconds // 60}:{seconds % 60:02d} ({disposition})"
        )
    else:
        text = f"Missed call to {number} ({disposition or 'not answered'}): call back"
    if fields.get("is_recorded") == "1" and fields.get("call_id_with_rec"):
        text += f"\nRecording: {fields['call_id_with_rec']}"
    outcome = _DISPOSITIONS.get(disposition, CallDisposition.FAILED)
    answered = (
        request.now - timedelta(seconds=seconds) if outcome is CallDisposition.ANSWERED else None
    )
    call = CallRecord(
        line=source.key,
        call_id=call_id,
        caller=caller,
        callee=number,
        direction=Direction.INBOUND,
        started_at=answered or request.now,
        disposition=outcome,
        answered_at=answered,
        ended_at=request.now,
        source="zadarma",
    )
    return InboundMessage(
        channel=Channel.PHONE,
        channel_account=source.key,
        external_id=f"call:{call_id}",
        identities=identities(caller, None),
        occurred_at=request.now,
        text=text,
        funnel=source.funnel,
        raw_ref=f"zadarma:{call_id}",
        call=call,
    )
