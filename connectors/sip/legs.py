"""pjsua2 ``Call`` and ``Account`` subclasses that hand their callbacks to a listener.

They run on the SIP thread only; the listener (a call session or a line) decides.
"""

from __future__ import annotations

import logging
from typing import Protocol

import pjsua2 as pj

log = logging.getLogger(__name__)


class LegListener(Protocol):
    def leg_state(self, leg: Leg, state: int, code: int) -> None: ...

    def leg_media(self, leg: Leg) -> None: ...


class AccountListener(Protocol):
    def incoming(self, account: LineAccount, prm: pj.OnIncomingCallParam) -> None: ...

    def registration(self, code: int, reason: str, active: bool) -> None: ...


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


NOBODY = _Nobody()


class Leg(pj.Call):  # type: ignore[misc]
    """One SIP dialog of a call: the client's, or one placed to a manager's phone."""

    def __init__(self, account: pj.Account, listener: LegListener, call_id: int = -1) -> None:
        if call_id == -1:
            super().__init__(account)
        else:
            super().__init__(account, call_id)
        self.listener: LegListener = listener
        self.gone = False

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
        if self.gone:
            return
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
        if self.gone:
            return
        try:
            self.hangup(pj.CallOpParam())
        except pj.Error as exc:
            log.debug("SIP hangup: %s", exc.info())


class LineAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, listener: AccountListener) -> None:
        super().__init__()
        self.listener: AccountListener = listener

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # noqa: N802
        try:
            self.listener.incoming(self, prm)
        except Exception:
            log.exception("SIP incoming call handler failed")

    def onRegState(self, prm: pj.OnRegStateParam) -> None:  # noqa: N802
        try:
            info = self.getInfo()
            self.listener.registration(prm.code, prm.reason, info.regIsActive)
        except Exception:
            log.exception("SIP registration handler failed")
