"""pjsua2 ``Call`` and ``Account`` subclasses that hand their callbacks to a listener.

They run on the SIP thread only; the listener (a call session or a line) decides.

Nothing a peer sends makes a line place a call: a ``REFER`` (transfer) and an ``INVITE``
with ``Replaces`` are refused (603) in pjsua2's callbacks, before pjsua would dial the
``Refer-To`` or swap a dialog under a :class:`Leg` (pjsua reuses the Python object of
the old call for the new one; once the hub frees it, pjsua calls into freed memory).
Every ``Call`` pjsua hands us is kept alive by the line until it is disconnected.
"""

from __future__ import annotations

import logging
from typing import Protocol

import pjsua2 as pj

log = logging.getLogger(__name__)
REFUSED = 603  # Decline: what a REFER or an INVITE with Replaces is answered


class LegListener(Protocol):
    def leg_state(self, leg: Leg, state: int, code: int) -> None: ...

    def leg_media(self, leg: Leg) -> None: ...


class AccountListener(Protocol):
    def incoming(self, account: LineAccount, prm: pj.OnIncomingCallParam) -> None: ...

    def registration(self, code: int, reason: str, active: bool) -> None: ...

    def subscription(self, prm: pj.OnIncomingSubscribeParam) -> None: ...


class _Nobody:
    """The listener of a released leg: pjsua2 objects must die on the SIP thread, so
    legs and their calls hold no reference cycle once a call is over."""

    def leg_state(self, leg: Leg, state: int, code: int) -> None:
        return None

    def leg_media(self, leg: Leg) -> None:
        return None

    def incoming(self, account: LineAccount, prm: pj.OnIncomingCallParam) -> None:
        return None

    def registration(self, code: int, reason: str, active: bool) -> None:
        return None

    def subscription(self, prm: pj.OnIncomingSubscribeParam) -> None:
        return None


NOBODY = _Nobody()


class Leg(pj.Call):  # type: ignore[misc]
    """One SIP dialog of a call: the client's, or one placed to a manager's phone."""

    def __init__(self, account: LineAccount, listener: LegListener, call_id: int = -1) -> None:
        if call_id == -1:
            super().__init__(account)
        else:
            super().__init__(account, call_id)
        self.account = account
        self.listener: LegListener = listener
        self.gone = False
        self.ending = False  # a final answer or a hang-up was sent

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802
        try:
            info = self.getInfo()
            if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.gone = True
            self.listener.leg_state(self, info.state, info.lastStatusCode)
        except Exception:
            log.exception("SIP call state handler failed")

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        try:
            self.listener.leg_media(self)
        except Exception:
            log.exception("SIP media handler failed")

    @property
    def live(self) -> bool:
        """It holds one of pjsua's call slots (placed or received, not yet disconnected)."""
        return not self.gone and self.getId() >= 0

    # A peer's requests that would make the line place a call: always refused.
    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:  # noqa: N802
        try:
            prm.statusCode = REFUSED
            log.warning("SIP: a REFER to %.200r refused (call %s)", prm.dstUri, self._name())
        except Exception:
            log.exception("SIP REFER handler failed")

    def onCallReplaceRequest(self, prm: pj.OnCallReplaceRequestParam) -> None:  # noqa: N802
        try:
            prm.statusCode = REFUSED
            prm.reason = "Decline"
            log.warning("SIP: an INVITE with Replaces refused (call %s)", self._name())
        except Exception:
            log.exception("SIP replace handler failed")

    def onCallReplaced(self, prm: pj.OnCallReplacedParam) -> None:  # noqa: N802
        """Not reached while replace requests are refused; should pjsua replace a call
        anyway, the new call gets a leg of its own that the line keeps and hangs up."""
        try:
            stray = Leg(self.account, NOBODY, prm.newCallId)
            prm.newCall = stray
            self.account.adopt(stray)
            log.warning("SIP: call %s was replaced by a peer; hanging up", self._name())
        except Exception:
            log.exception("SIP replaced handler failed")

    def _name(self) -> str:
        try:
            return str(self.getInfo().callIdString)[:200]
        except pj.Error:
            return "?"

    def audio(self) -> pj.AudioMedia | None:
        """The active audio of this leg, if any."""
        try:
            info = self.getInfo()
            for index, media in enumerate(info.media):
                if (
                    media.type == pj.PJMEDIA_TYPE_AUDIO
                    and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE
                ):
                    return self.getAudioMedia(index)
        except pj.Error:
            return None
        return None

    def respond(self, code: int, reason: str = "") -> None:
        if self.gone or self.ending:
            return
        self.ending = code >= 300
        prm = pj.CallOpParam()
        prm.statusCode = code
        if reason:
            prm.reason = reason
        try:
            if code < 300:
                self.answer(prm)
            else:
                self.hangup(prm)
        except pj.Error as exc:
            log.debug("SIP respond %s: %s", code, exc.info())

    def drop(self) -> None:
        if self.gone or self.ending:
            return
        self.ending = True
        try:
            self.hangup(pj.CallOpParam())
        except pj.Error as exc:
            log.debug("SIP hangup: %s", exc.info())


class LineAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, listener: AccountListener) -> None:
        super().__init__()
        self.listener: AccountListener = listener
        self.strays: list[Leg] = []  # calls the hub refused or ends: kept until disconnected

    def adopt(self, leg: Leg) -> None:
        """Keep ``leg`` alive until it is disconnected (pjsua still calls into it)."""
        leg.listener = NOBODY
        self.strays.append(leg)

    def reap(self) -> None:
        """Hang up the strays and let go of those that are gone (not from their callbacks)."""
        for leg in self.strays:
            leg.drop()
        self.strays = [leg for leg in self.strays if not leg.gone]

    @property
    def slots_in_use(self) -> int:
        return sum(1 for leg in self.strays if leg.live)

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # noqa: N802
        try:
            self.listener.incoming(self, prm)
        except Exception:
            log.exception("SIP incoming call handler failed")

    def onIncomingSubscribe(self, prm: pj.OnIncomingSubscribeParam) -> None:  # noqa: N802
        try:
            self.listener.subscription(prm)
        except Exception:
            log.exception("SIP subscription handler failed")

    def onRegState(self, prm: pj.OnRegStateParam) -> None:  # noqa: N802
        try:
            info = self.getInfo()
            self.listener.registration(prm.code, prm.reason, info.regIsActive)
        except Exception:
            log.exception("SIP registration handler failed")
