"""What the hub does for the SIP lines: who takes a call, and storing a call that ended.

Routing is the house's: the client's own manager first (a returning client), then the
team queue of the rule the call matches; only managers with a SIP address on the line
are rung. A team that is closed at the call's time gets the voicemail.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.sip.config import LineConfig
from connectors.sip.events import CallEnded, CallPlan, IncomingCall, Target
from connectors.store import BlobStore
from crm_core.contracts import Attachment, CallRecord, IdentityRef, InboundMessage
from crm_core.db import Database
from crm_core.enums import Channel, Direction, IdentityKind, Role
from crm_core.identities import InvalidIdentityError, normalize
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.models import Contact, ContactIdentity, Manager, Team
from hub.routing_setup import RoutingState
from routing import Candidate, RoutingEvent

log = logging.getLogger(__name__)
_STORE_ATTEMPTS = 5
VOICEMAIL = "voicemail"  # the store's kind of file, and the attachment's name (.wav)
RECORDING = "recording"  # an answered call's recording (crm_core.recordings removes it)
WITHHELD_TEXT = "a withheld number"  # "Missed call from a withheld number, 0:00"


def e164(number: str, region: str) -> str | None:
    try:
        return normalize(IdentityRef(IdentityKind.PHONE, number), region).value
    except InvalidIdentityError:
        return None


async def plan_for(
    db: Database,
    routing: RoutingState,
    policy: IngestPolicy,
    line: LineConfig,
    call: IncomingCall,
) -> CallPlan:
    number = e164(call.caller, policy.default_region)

    def read(session: Session) -> tuple[int | None, list[Candidate]]:
        owner = None
        if number is not None:
            owner = session.scalar(
                select(Contact.owner_id)
                .join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
                .where(ContactIdentity.kind == IdentityKind.PHONE, ContactIdentity.value == number)
                .limit(1)
            )
        rows = session.execute(
            select(
                Manager.id, Manager.team_id, Manager.capacity, Manager.last_assigned_at, Team.name
            )
            .outerjoin(Team, Team.id == Manager.team_id)
            .where(Manager.active.is_(True), Manager.role == Role.MANAGER)
            .order_by(Manager.id)
        ).all()
        candidates = [Candidate(r[0], r[1], True, 0, r[2], r[3], r[4]) for r in rows]
        return owner, candidates

    owner, candidates = await db.read(read)
    event = RoutingEvent(
        channel=Channel.PHONE.value,
        channel_account=line.key,
        occurred_at=call.started_at,
        returning=owner is not None,
        owner_id=owner,
    )
    decision = routing.route(event, candidates)
    team = routing.config.teams.get(decision.team)
    if team is not None and decision.manager_id is None and not team.hours.is_open(call.started_at):
        return CallPlan(voicemail=True)
    order: list[int] = []
    if owner is not None:
        order.append(owner)
    if decision.manager_id is not None:
        order.append(decision.manager_id)
    order.extend(decision.offered_to)
    if team is not None:
        order.extend(team.queue(candidates))
    order.extend(line.managers)  # anyone else with a phone on this line, last
    seen: set[int] = set()
    targets = []
    for manager_id in order:
        uri = line.managers.get(manager_id)
        if uri is not None and manager_id not in seen:
            seen.add(manager_id)
            targets.append(Target(manager_id, uri))
    return CallPlan(targets=tuple(targets))


async def store_call(
    ingest: IngestService, db: Database, store: BlobStore, line: LineConfig, call: CallEnded
) -> None:
    """Ingest the call (retrying a failing database); its voicemail or recording goes to
    the store and is attached to the call and to its message (the inbox plays it)."""
    region = ingest.policy.default_region
    number = call.caller if call.direction is Direction.INBOUND else call.callee
    phone = e164(number, region)
    voicemail = await _wav(store, call.voicemail_path, VOICEMAIL)
    recording = await _wav(store, call.recording_path, RECORDING)
    inbound = call.direction is Direction.INBOUND
    if phone is None and not inbound:
        log.warning("sip: call %s to %r: no phone number to file it under", call.call_id, number)
        return
    record = CallRecord(
        line=line.key,
        call_id=call.call_id,
        caller=(phone or call.caller) if inbound else call.caller,
        callee=call.callee if inbound else (phone or call.callee),
        direction=call.direction,
        started_at=call.started_at,
        disposition=call.disposition,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        manager_id=call.manager_id,
        voicemail=voicemail,
        recording=recording,
        callback_sla=timedelta(minutes=line.callback_sla_minutes),
    )
    # A caller who withheld the number (``anonymous``, or no number at all) is a record
    # of its own, with no identity: a manager attaches it to a contact by merging.
    message = InboundMessage(
        channel=Channel.PHONE,
        channel_account=line.key,
        external_id=record.key,
        identities=() if phone is None else (IdentityRef(IdentityKind.PHONE, phone),),
        occurred_at=call.started_at,
        text=(replace(record, caller=WITHHELD_TEXT) if phone is None else record).summary(),
        attachments=tuple(a for a in (voicemail, recording) if a is not None),
        raw_ref=record.key,
        call=record,
    )
    for attempt in range(1, _STORE_ATTEMPTS + 1):
        try:
            await ingest.ingest(message)
            return
        except Exception:
            if attempt == _STORE_ATTEMPTS:
                log.exception("sip: call %s could not be stored", record.key)
                return
            log.warning("sip: storing call %s failed, retrying", record.key, exc_info=True)
            await asyncio.sleep(0.5 * 2**attempt)


async def _wav(store: BlobStore, path: str | None, name: str) -> Attachment | None:
    """The line's finished WAV (a voicemail or a call's recording), moved to the store."""
    if path is None:
        return None
    file = Path(path)
    try:
        data = await asyncio.to_thread(file.read_bytes)
    except OSError:
        log.warning("sip: the %s %s is missing", name, path)
        return None
    data = finished_wav(data)
    key = await store.put(data, name)
    await asyncio.to_thread(file.unlink, True)
    return Attachment(f"{name}.wav", "audio/wav", len(data), storage_key=key)


def finished_wav(data: bytes) -> bytes:
    """A WAV whose RIFF and ``data`` sizes say what the file holds. A recorder that was
    not closed leaves them 0 (players show 0:00, Python's ``wave`` refuses the file);
    the line waits for pjsua to close it, and this mends what a stop cut short."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return data
    fixed = bytearray(data)
    fixed[4:8] = struct.pack("<I", len(data) - 8)
    offset = 12
    while offset + 8 <= len(data):
        name, size = (
            data[offset : offset + 4],
            struct.unpack("<I", data[offset + 4 : offset + 8])[0],
        )
        room = len(data) - offset - 8
        if name == b"data":
            if size == 0 or size > room:
                fixed[offset + 4 : offset + 8] = struct.pack("<I", room - room % 2)
            break
        offset += 8 + size + size % 2
    return bytes(fixed)
