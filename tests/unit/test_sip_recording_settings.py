"""``record_calls`` and ``recording_retention_days`` of a SIP line, checked like the rest."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.sip.config import LineConfig, SipConfigError, parse_config


def _line(**settings: Any) -> LineConfig:
    return parse_config({"lines": [{"key": "office", **settings}]}).lines[0]


def test_answered_calls_are_recorded_and_kept_90_days_by_default() -> None:
    line = _line()
    assert (line.record_calls, line.recording_retention_days) == (True, 90)


def test_recording_can_be_turned_off_and_kept_forever() -> None:
    line = _line(record_calls=False, recording_retention_days=0)
    assert (line.record_calls, line.recording_retention_days) == (False, 0)
    assert _line(recording_retention_days=3650).recording_retention_days == 3650


@pytest.mark.parametrize("value", ["yes", 1, 0, None, "false"])
def test_record_calls_is_true_or_false(value: Any) -> None:
    with pytest.raises(SipConfigError, match=r"lines\[0\]\.record_calls: true or false"):
        _line(record_calls=value)


@pytest.mark.parametrize("value", [-1, 36_501, 1.5, "90", True, None])
def test_the_retention_is_a_whole_number_of_days(value: Any) -> None:
    with pytest.raises(SipConfigError, match=r"lines\[0\]\.recording_retention_days"):
        _line(recording_retention_days=value)
