"""IP telephony on pjsua2 (the optional ``sip`` extra): SIP lines as channel accounts.

This package imports without pjsua2; :func:`available` says whether the user agent
can run. Only :mod:`connectors.sip.endpoint`, :mod:`connectors.sip.line` and
:mod:`connectors.sip.click_to_call` import pjsua2, and only the SIP thread runs them.
"""

from __future__ import annotations

import importlib.util


def available() -> bool:
    """True when the pjsua2 bindings are installed (``pip install 'omnihub[sip]'``)."""
    return importlib.util.find_spec("pjsua2") is not None
