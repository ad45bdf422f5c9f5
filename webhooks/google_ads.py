"""Google Ads lead form extensions: the webhook's JSON, checked by its ``google_key``.

Test leads (``is_test: true``, sent from the form's "Send test data") are stored as test
messages (``InboundMessage.test``): a contact of their own marked ``is_test``, without
identities, routed to no one and left out of reports; ``[TEST]`` marks the name and text.
"""

from __future__ import annotations

from typing import Any

from crm_core.contracts import Attribution, InboundMessage
from crm_core.enums import Channel
from webhooks.common import (
    BadSignatureError,
    HookRequest,
    Leads,
    MalformedBodyError,
    identities,
    json_body,
)
from webhooks.signatures import same
from webhooks.sources import Source

_ROLES = {
    "FULL_NAME": "name",
    "FIRST_NAME": "first_name",
    "LAST_NAME": "last_name",
    "EMAIL": "email",
    "WORK_EMAIL": "email",
    "PHONE_NUMBER": "phone",
    "WORK_PHONE": "phone",
    "COMPANY_NAME": "company",
}


def handle(source: Source, request: HookRequest) -> Leads:
    doc = json_body(request)
    if not same(str(doc.get("google_key") or ""), source.option("google_key")):
        raise BadSignatureError("google_key does not match this source's key")
    lead_id = doc.get("lead_id")
    if not isinstance(lead_id, str) or not lead_id or len(lead_id) > 190:
        raise MalformedBodyError("lead_id: a string is required")
    columns = doc.get("user_column_data")
    if not isinstance(columns, list):
        raise MalformedBodyError("user_column_data: a list is required")
    roles: dict[str, str] = {}
    custom: list[str] = []
    for index, column in enumerate(columns):
        if not isinstance(column, dict):
            raise MalformedBodyError(f"user_column_data[{index}]: an object is required")
        value = str(column.get("string_value") or "").strip()
        role = _ROLES.get(str(column.get("column_id") or ""))
        if role is not None and value:
            roles.setdefault(role, value)
        elif value:
            label = column.get("column_name") or column.get("column_id") or f"column {index}"
            custom.append(f"{label}: {value}")
    test = doc.get("is_test") is True
    name = roles.get("name") or " ".join(
        p for p in (roles.get("first_name"), roles.get("last_name")) if p
    )
    ids = [
        f"{k}: {doc[k]}"
        for k in ("form_id", "campaign_id", "adgroup_id", "creative_id")
        if doc.get(k) not in (None, "")
    ]
    text = "\n".join(
        [
            "[TEST] a test lead from Google Ads" if test else "Lead from a Google Ads lead form",
            *custom,
            *ids,
        ]
    )
    message = InboundMessage(
        channel=Channel.AD_LEAD,
        channel_account=source.key,
        external_id=f"lead:{lead_id}",
        identities=identities(roles.get("phone"), roles.get("email")),
        occurred_at=request.now,
        display_name=(f"[TEST] {name}" if test else name)[:200] or None,
        company=roles.get("company"),
        text=text,
        attribution=Attribution(
            utm_source="google",
            utm_medium="lead_form",
            utm_campaign=_id(doc.get("campaign_id")),
            utm_content=_id(doc.get("creative_id")),
            gclid=_id(doc.get("gcl_id")),
        ),
        funnel=source.funnel,
        raw_ref=f"google_ads:{lead_id}",
        test=test,
    )
    return Leads((message,))


def _id(value: Any) -> str | None:
    return str(value)[:200] if value not in (None, "") else None
