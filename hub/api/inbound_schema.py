"""The JSON body of ``POST /api/v1/inbound`` (validated with pydantic; unknown fields refused)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from crm_core.contracts import Attachment, Attribution, IdentityRef, InboundMessage
from crm_core.enums import Channel, IdentityKind, Segment
from hub.api.moments import Moment

_STRICT = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
Short = Field(default=None, max_length=200)


class IdentityIn(BaseModel):
    model_config = _STRICT
    kind: IdentityKind
    value: str = Field(min_length=1, max_length=320)


class SenderIn(BaseModel):
    model_config = _STRICT
    name: str | None = Short
    company: str | None = Short
    segment: Segment | None = None
    identities: list[IdentityIn] = Field(min_length=1, max_length=20)


class AttachmentIn(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1, max_length=255)
    content_type: str = Field(default="application/octet-stream", max_length=127)
    size: int = Field(ge=0)
    url: str | None = Field(default=None, max_length=2000)


class AttributionIn(BaseModel):
    model_config = _STRICT
    utm_source: str | None = Short
    utm_medium: str | None = Short
    utm_campaign: str | None = Short
    utm_content: str | None = Short
    utm_term: str | None = Short
    gclid: str | None = Short
    yclid: str | None = Short
    fbclid: str | None = Short
    referrer: str | None = Field(default=None, max_length=2000)
    landing_page: str | None = Field(default=None, max_length=2000)


class InboundBody(BaseModel):
    """A message from any channel that has no connector of its own (or from your own code)."""

    model_config = _STRICT
    channel: Channel = Channel.API
    channel_account: str = Field(default="default", min_length=1, max_length=120)
    external_id: str = Field(min_length=1, max_length=200)
    sender: SenderIn
    text: str = Field(default="", max_length=65_536)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=20)
    attribution: AttributionIn | None = None
    occurred_at: Moment | None = None
    funnel: str | None = Field(default=None, min_length=1, max_length=64)

    def to_message(self, now: datetime, raw_ref: str | None = None) -> InboundMessage:
        return InboundMessage(
            channel=self.channel,
            channel_account=self.channel_account,
            external_id=self.external_id,
            identities=tuple(IdentityRef(i.kind, i.value) for i in self.sender.identities),
            occurred_at=self.occurred_at or now,
            display_name=self.sender.name or None,
            company=self.sender.company or None,
            segment=self.sender.segment,
            text=self.text,
            attachments=tuple(
                Attachment(a.name, a.content_type, a.size, url=a.url) for a in self.attachments
            ),
            attribution=Attribution(**self.attribution.model_dump())
            if self.attribution
            else Attribution(),
            funnel=self.funnel,
            raw_ref=raw_ref,
        )
