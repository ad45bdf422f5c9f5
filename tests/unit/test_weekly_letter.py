"""The Monday letter without a database: its moment, its settings, its words."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from crm_core.weekly_letter import LetterSchedule
from hub.app import create_app
from hub.letter_words import amount, compose, span, words_for
from hub.settings import Settings, SettingsError, load_settings

MSK = ZoneInfo("Europe/Moscow")
MONDAY_NINE = LetterSchedule(0, time(9, 0), "Europe/Moscow")
MAILBOX = {
    "key": "sales",
    "address": "sales@example.com",
    "imap": {"host": "imap.example.com", "user": "sales", "password": "x"},
    "smtp": {"host": "smtp.example.com", "user": "sales", "password": "x"},
}


def msk(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=MSK)


def test_the_past_week_is_due_from_the_moment_to_the_end_of_the_week() -> None:
    assert MONDAY_NINE.due(msk(30, 8, 59)) is None
    week = MONDAY_NINE.due(msk(30, 9))
    assert week is not None
    assert (week.first, week.last) == (date(2026, 11, 23), date(2026, 11, 29))
    # still the same letter on Sunday night; a new one from the next Monday's moment
    late = MONDAY_NINE.due(msk(6, 23, 59, month=12))
    assert late is not None
    assert late.first == date(2026, 11, 23)
    assert MONDAY_NINE.due(msk(7, 8, 0, month=12)) is None
    # the moment is Moscow's: 06:00 UTC is 09:00 there
    assert MONDAY_NINE.due(datetime(2026, 11, 30, 5, 59, tzinfo=ZoneInfo("UTC"))) is None


def test_a_sunday_letter_sums_up_the_last_whole_week() -> None:
    sunday = LetterSchedule(6, time(18, 30), "Europe/Moscow")
    assert sunday.due(msk(6, 18, 29, month=12)) is None
    week = sunday.due(msk(6, 18, 30, month=12))
    assert week is not None
    assert (week.first, week.last) == (date(2026, 11, 23), date(2026, 11, 29))


def _settings(tmp_path: Path, **values: Any) -> Settings:
    base: dict[str, Any] = {
        "media_dir": str(tmp_path / "media"),
        "channels": {"email": {"media_dir": str(tmp_path / "mail"), "mailboxes": [MAILBOX]}},
        "weekly_letter_mailbox": "sales",
        "public_url": "https://crm.example.com",
    }
    return Settings(**{**base, **values})


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"weekly_letter_day": "monday!"}, "weekly_letter_day"),
        ({"weekly_letter_day": "someday"}, "weekly_letter_day"),
        ({"weekly_letter_time": "9am"}, "weekly_letter_time"),
        ({"weekly_letter_time": "24:00"}, "weekly_letter_time"),
        ({"weekly_letter_mailbox": "support"}, "weekly_letter_mailbox: no mailbox 'support'"),
        ({"channels": {}}, r"weekly_letter_mailbox: .*configured: none"),
        ({"public_url": ""}, "public_url: .*needed by weekly_letter_mailbox"),
        ({"public_url": "crm.example.com"}, "public_url"),
        ({"public_url": "ftp://crm.example.com"}, "public_url"),
        # a bad day or time stops the start even while the letters are off
        ({"weekly_letter_mailbox": "", "weekly_letter_time": "25:00"}, "weekly_letter_time"),
    ],
)
def test_bad_letter_settings_stop_the_start_naming_the_setting(
    tmp_path: Path, values: dict[str, Any], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        create_app(_settings(tmp_path, **values))


def test_good_letter_settings_start(tmp_path: Path) -> None:
    create_app(_settings(tmp_path, weekly_letter_day="Friday", weekly_letter_time="7:30"))
    create_app(_settings(tmp_path, weekly_letter_mailbox="", public_url=""))
    create_app(_settings(tmp_path, channels={}, weekly_letter_mailbox=""))


def test_letter_settings_come_from_the_environment() -> None:
    settings = load_settings(
        env={
            "OMNIHUB_WEEKLY_LETTER_MAILBOX": "sales",
            "OMNIHUB_WEEKLY_LETTER_DAY": "tue",
            "OMNIHUB_WEEKLY_LETTER_TIME": "08:15",
            "OMNIHUB_PUBLIC_URL": "https://crm.example.com",
        }
    )
    assert (settings.weekly_letter_mailbox, settings.weekly_letter_day) == ("sales", "tue")
    assert (settings.weekly_letter_time, settings.public_url) == (
        "08:15",
        "https://crm.example.com",
    )


def test_spans_and_amounts_in_each_language() -> None:
    en, ru = words_for("en"), words_for("ru")
    assert span(date(2026, 11, 23), date(2026, 11, 29), en) == "23-29 Nov"
    assert span(date(2026, 12, 28), date(2027, 1, 3), ru) == "28 декабря - 3 января"
    assert amount("1234567.5", en) == "1,234,567.50"
    assert amount("1234567.5", ru) == "1 234 567,50"
    assert words_for("de") is en
    assert words_for(None) is en


def test_names_stay_text_in_the_html_part() -> None:
    payload = {
        "name": "<b>Head</b>",
        "locale": "en",
        "week": {"from": "2026-11-23", "to": "2026-11-29", "timezone": "Europe/Moscow"},
        "link": "https://crm.example.com/reports?from=2026-11-23&to=2026-11-29",
        "totals": {
            "new_deals": 0,
            "won": 0,
            "revenue": "0",
            "lost": 0,
            "received": 0,
            "answered": 0,
            "median_first_response_minutes": None,
        },
        "managers": [
            {
                "manager_id": 1,
                "name": "<script>alert(1)</script>",
                "received": 1,
                "answered": 0,
                "median_first_response_minutes": None,
                "won": 0,
                "revenue": "0",
                "lost": 0,
            },
            {
                "manager_id": None,
                "name": None,
                "received": 2,
                "answered": 1,
                "median_first_response_minutes": 12.5,
                "won": 0,
                "revenue": "0",
                "lost": 0,
            },
        ],
    }
    letter = compose(payload)
    assert "<script>" not in letter.html
    assert "<b>Head" not in letter.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in letter.html
    assert "- <script>alert(1)</script>: conversations 1, answered 0, no first responses" in (
        letter.text
    )
    assert "- Unassigned: conversations 2, answered 1, median first response 12.5 min" in (
        letter.text
    )
    assert "from=2026-11-23&amp;to=2026-11-29" in letter.html
