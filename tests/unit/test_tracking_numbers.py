"""Tracking numbers: a call to one of the hub's numbers is a touch of its campaign."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crm_core.contracts import Attribution, CallRecord, IdentityRef, InboundMessage
from crm_core.enums import CallDisposition, Channel, Direction, IdentityKind
from crm_core.tracking import TrackingConfigError, callee_number, tracked, tracking_table
from hub.app import create_app
from hub.settings import Settings, SettingsError, load_settings

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TABLE = {
    "+74951234567": {"utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "pg-clusters"},
    "8 (495) 765-43-21": {"utm_source": "offline", "utm_campaign": "billboards"},
}


def test_the_table_is_keyed_by_e164() -> None:
    table = tracking_table(TABLE, "RU")
    assert table == {
        "+74951234567": Attribution(
            utm_source="yandex", utm_medium="cpc", utm_campaign="pg-clusters"
        ),
        "+74957654321": Attribution(utm_source="offline", utm_campaign="billboards"),
    }
    assert tracking_table({}, "RU") == {}


@pytest.mark.parametrize(
    ("table", "names"),
    [
        ({"not a number": {"utm_source": "x"}}, "'not a number'"),
        ({"+74951234567": "yandex"}, "expected a table"),
        ({"+74951234567": {"utm_source": 5}}, "utm_source"),
        ({"+74951234567": {"utm_sorce": "x"}}, "utm_sorce"),
        ({"+74951234567": {}}, "at least one"),
        ({"+74951234567": {"utm_source": "a"}, "84951234567": {"utm_source": "b"}}, "twice"),
    ],
)
def test_a_bad_table_is_refused_naming_the_entry(table: dict[str, object], names: str) -> None:
    with pytest.raises(TrackingConfigError, match=names):
        tracking_table(table, "RU")


def test_the_called_number_in_the_forms_pbxes_and_lines_give() -> None:
    assert callee_number("74951234567") == "74951234567"
    assert callee_number("+7 495 123-45-67") == "+7 495 123-45-67"
    assert callee_number("<sip:74951234567@sip.example.com>") == "74951234567"
    assert callee_number('"Sales" <sips:+74951234567@pbx;transport=tls>') == "+74951234567"
    assert callee_number("tel:+74951234567;phone-context=x") == "+74951234567"
    assert callee_number("<sip:sales@sip.example.com>") == "sales"


def _call(callee: str, direction: Direction = Direction.INBOUND, **more: object) -> InboundMessage:
    record = CallRecord(
        line="zadarma",
        call_id="c1",
        caller="+79161230001",
        callee=callee,
        direction=direction,
        started_at=NOW,
        disposition=CallDisposition.MISSED,
        source="zadarma",
    )
    return InboundMessage(
        channel=Channel.PHONE,
        channel_account="zadarma",
        external_id="call:c1",
        identities=(IdentityRef(IdentityKind.PHONE, "+79161230001"),),
        occurred_at=NOW,
        call=record,
        **more,  # type: ignore[arg-type]
    )


def test_a_call_to_a_tracking_number_carries_its_campaign() -> None:
    table = tracking_table(TABLE, "RU")
    message = tracked(_call("74951234567"), table, "RU")
    assert message.attribution == table["+74951234567"]
    assert tracked(_call("<sip:84957654321@pbx>"), table, "RU").attribution.utm_campaign == (
        "billboards"
    )


def test_what_the_table_leaves_alone() -> None:
    table = tracking_table(TABLE, "RU")
    untracked = _call("74950000000")
    assert tracked(untracked, table, "RU") is untracked
    given = _call("74951234567", attribution=Attribution(utm_source="partner"))
    assert tracked(given, table, "RU") is given  # the PBX's own tags win
    outgoing = _call("74951234567", Direction.OUTBOUND)
    assert tracked(outgoing, table, "RU") is outgoing
    garbage = _call("the PBX")
    assert tracked(garbage, table, "RU") is garbage
    form = InboundMessage(
        channel=Channel.FORM,
        channel_account="landing",
        external_id="x",
        identities=(IdentityRef(IdentityKind.PHONE, "+74951234567"),),
        occurred_at=NOW,
    )
    assert tracked(form, table, "RU") is form


def test_the_setting_from_a_file_and_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "omnihub.toml"
    config.write_text(
        '[tracking_numbers]\n"+74951234567" = { utm_source = "yandex", utm_campaign = "pg" }\n'
    )
    settings = load_settings(config, env={})
    assert settings.tracking_numbers == {
        "+74951234567": {"utm_source": "yandex", "utm_campaign": "pg"}
    }
    env = {"OMNIHUB_TRACKING_NUMBERS": json.dumps({"84951234567": {"utm_source": "vk"}})}
    assert load_settings(env=env).tracking_numbers == {"84951234567": {"utm_source": "vk"}}
    config.write_text('[tracking_numbers]\n"+74951234567" = "yandex"\n')
    with pytest.raises(SettingsError, match="one table per number"):
        load_settings(config, env={})


def test_a_bad_table_stops_the_start() -> None:
    settings = Settings(
        database_url="sqlite:///unused.sqlite3",
        tracking_numbers={"+74951234567": {"utm_campain": "x"}},
    )
    with pytest.raises(TrackingConfigError, match="utm_campain"):
        create_app(settings)
