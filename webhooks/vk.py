"""VK lead forms through the Callback API: ``confirmation``, ``secret``, ``lead_forms_new``.

VK expects the configured confirmation code for ``confirmation`` and the text ``ok``
for every other event (or it retries).
"""

from __future__ import annotations

from crm_core.contracts import Attribution, IdentityRef, InboundMessage
from crm_core.enums import Channel, IdentityKind
from webhooks.common import (
    Answer,
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
    "first_name": "first_name",
    "last_name": "last_name",
    "patronymic_name": "patronymic",
    "phone_number": "phone",
    "email": "email",
}


def handle(source: Source, request: HookRequest) -> Answer | Leads:
    doc = json_body(request)
    kind = doc.get("type")
    group = source.option("group_id")
    if group and str(doc.get("group_id")) != group:
        raise BadSignatureError("the event is for another VK community")
    if kind == "confirmation":
        return Answer(source.option("confirmation"))
    if not same(str(doc.get("secret") or ""), source.option("secret")):
        raise BadSignatureError("the VK secret does not match")
    if kind != "lead_forms_new":
        return Answer("ok")
    lead = doc.get("object")
    if not isinstance(lead, dict) or not lead.get("lead_id"):
        raise MalformedBodyError("object.lead_id is required")
    answers = lead.get("answers") or []
    if not isinstance(answers, list):
        raise MalformedBodyError("object.answers: a list is required")
    roles: dict[str, str] = {}
    custom: list[str] = []
    for index, item in enumerate(answers):
        if not isinstance(item, dict):
            raise MalformedBodyError(f"object.answers[{index}]: an object is required")
        raw = item.get("answer")
        value = ", ".join(str(v) for v in raw) if isinstance(raw, list) else str(raw or "")
        role = _ROLES.get(str(item.get("key") or ""))
        if role is not None and value:
            roles[role] = value.strip()
        elif value:
            custom.append(f"{item.get('question') or item.get('key')}: {value.strip()}")
    user = lead.get("user_id")
    vk_user = (IdentityRef(IdentityKind.VK, str(user)),) if user else ()
    name = " ".join(roles[r] for r in ("first_name", "patronymic", "last_name") if roles.get(r))
    form = lead.get("form_name") or lead.get("form_id")
    message = InboundMessage(
        channel=Channel.AD_LEAD,
        channel_account=source.key,
        external_id=f"lead:{lead['lead_id']}",
        identities=identities(roles.get("phone"), roles.get("email"), *vk_user),
        occurred_at=request.now,
        display_name=name[:200] or None,
        text="\n".join([f"Lead from the VK form {form}", *custom]),
        attribution=Attribution(
            utm_source="vk",
            utm_medium="lead_form",
            utm_campaign=str(lead["ad_id"])[:200] if lead.get("ad_id") else None,
        ),
        funnel=source.funnel,
        raw_ref=f"vk:{lead['lead_id']}",
    )
    return Leads((message,), answer=Answer("ok"))
