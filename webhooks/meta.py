"""Meta (Facebook/Instagram) Lead Ads: the ``hub.challenge`` check, ``X-Hub-Signature-256``,
``leadgen`` changes, and the lead's fields fetched from the Graph API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from crm_core.contracts import Attribution, InboundMessage
from crm_core.enums import Channel
from webhooks.common import (
    Answer,
    BadSignatureError,
    HookRequest,
    MalformedBodyError,
    identities,
    json_body,
)
from webhooks.signatures import hmac_sha256_hex, same
from webhooks.sources import Source

GRAPH_FIELDS = (
    "id,created_time,ad_id,ad_name,adset_id,campaign_id,campaign_name,"
    "form_id,field_data,is_organic,platform"
)
_ROLES = {
    "full_name": "name",
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "phone_number": "phone",
    "company_name": "company",
}


class GraphError(Exception):
    """The Graph API did not give the lead.

    ``healable``: the error may go away by itself (the Graph API's 5xx or 429, a
    timeout, a connection error, an unreadable answer), so the lead is worth another
    try later; a 4xx (an unknown or deleted lead, a token without the permission) is not.
    """

    def __init__(self, message: str, *, healable: bool) -> None:
        super().__init__(message)
        self.healable = healable


@dataclass(frozen=True, slots=True)
class LeadRef:
    leadgen_id: str
    form_id: str | None
    page_id: str | None


def challenge(source: Source, request: HookRequest) -> Answer:
    """The subscription check: echo ``hub.challenge`` when the verify token matches."""
    if request.query.get("hub.mode") != "subscribe" or not same(
        request.query.get("hub.verify_token"), source.option("verify_token")
    ):
        raise BadSignatureError("hub.mode=subscribe and the right hub.verify_token are needed")
    return Answer(request.query.get("hub.challenge", "")[:200])


def verify(source: Source, request: HookRequest) -> None:
    given = request.headers.get("X-Hub-Signature-256", "")
    expected = "sha256=" + hmac_sha256_hex(source.option("app_secret").encode(), request.body)
    if not same(given.strip().lower(), expected):
        raise BadSignatureError("X-Hub-Signature-256 does not match the app secret")


def lead_refs(request: HookRequest) -> list[LeadRef]:
    doc = json_body(request)
    entries = doc.get("entry")
    if not isinstance(entries, list):
        raise MalformedBodyError("entry: a list is required")
    refs: list[LeadRef] = []
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            if not isinstance(change, dict) or change.get("field") != "leadgen":
                continue
            value = change.get("value")
            if not isinstance(value, dict) or not value.get("leadgen_id"):
                raise MalformedBodyError("a leadgen change needs value.leadgen_id")
            refs.append(
                LeadRef(
                    str(value["leadgen_id"])[:150],
                    _opt(value.get("form_id")),
                    _opt(value.get("page_id")),
                )
            )
    return refs


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)[:200]


async def fetch_lead(
    session: aiohttp.ClientSession, source: Source, leadgen_id: str
) -> dict[str, Any]:
    url = (
        f"{source.option('graph_base').rstrip('/')}/{quote(leadgen_id, safe='', errors='replace')}"
    )
    params = {"access_token": source.option("access_token"), "fields": GRAPH_FIELDS}
    try:
        async with session.get(url, params=params) as response:
            if response.status != 200:
                status = response.status
                raise GraphError(
                    f"the Graph API answered {status}{await _graph_message(response)}",
                    healable=status >= 500 or status in (408, 429),
                )
            document = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise GraphError(
            f"the Graph API is not reachable: {type(exc).__name__}", healable=True
        ) from None
    if not isinstance(document, dict):
        raise GraphError("the Graph API answered something other than a lead", healable=False)
    return document


async def _graph_message(response: aiohttp.ClientResponse) -> str:
    """``: <error.message> (code N)`` from the Graph API's error document, if it has one."""
    try:
        error = (await response.json(content_type=None)).get("error")
    except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError):
        return ""
    if not isinstance(error, dict):
        return ""
    message = str(error.get("message") or "")[:200]
    code = error.get("code")
    return f": {message}" + (f" (code {code})" if isinstance(code, int) else "")


def lead_message(
    source: Source, ref: LeadRef, lead: dict[str, Any], request: HookRequest
) -> InboundMessage:
    roles: dict[str, str] = {}
    custom: list[str] = []
    field_data = lead.get("field_data")
    for item in field_data if isinstance(field_data, list) else []:
        if not isinstance(item, dict):
            continue
        values = item.get("values")
        value = ", ".join(str(v) for v in values) if isinstance(values, list) else ""
        role = _ROLES.get(str(item.get("name") or ""))
        if role is not None and value:
            roles[role] = value
        elif value:
            custom.append(f"{item.get('name')}: {value}")
    name = roles.get("name") or " ".join(
        p for p in (roles.get("first_name"), roles.get("last_name")) if p
    )
    organic = lead.get("is_organic") is True
    form = lead.get("form_id") or ref.form_id
    return InboundMessage(
        channel=Channel.AD_LEAD,
        channel_account=source.key,
        external_id=f"leadgen:{ref.leadgen_id}",
        identities=identities(roles.get("phone"), roles.get("email")),
        occurred_at=request.now,
        display_name=name[:200] or None,
        company=roles.get("company"),
        text="\n".join([f"Lead from the Meta lead form {form}", *custom]),
        attribution=Attribution(
            utm_source=str(lead.get("platform") or "facebook")[:200],
            utm_medium="organic" if organic else "lead_ads",
            utm_campaign=_opt(lead.get("campaign_name") or lead.get("campaign_id")),
            utm_content=_opt(lead.get("ad_name") or lead.get("ad_id")),
        ),
        funnel=source.funnel,
        raw_ref=f"meta:{ref.leadgen_id}",
    )
