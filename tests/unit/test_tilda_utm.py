"""Tilda's ``TILDAUTM`` cookie: the UTM tags of the page a form was sent from."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from webhooks import tilda
from webhooks.common import HookRequest, Leads
from webhooks.sources import Source
from webhooks.tilda import tilda_utm

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SOURCE = Source("tilda-main", "tilda")


def _cookie(value: str) -> str:
    """What Tilda's script writes: ``encodeURIComponent`` of the pairs, ``|||`` after each."""
    return "_ym_uid=1681; TILDAUTM=" + quote(value, safe="") + "; tildasid=abc"


def test_the_pairs_tilda_writes_are_read() -> None:
    cookies = _cookie("utm_source=yandex|||utm_medium=cpc|||utm_campaign=pg-clusters|||")
    assert tilda_utm(cookies) == {
        "utm_source": "yandex",
        "utm_medium": "cpc",
        "utm_campaign": "pg-clusters",
    }


def test_ampersands_and_an_unencoded_cookie_are_read_too() -> None:
    assert tilda_utm("TILDAUTM=utm_source=vk&utm_campaign=autumn") == {
        "utm_source": "vk",
        "utm_campaign": "autumn",
    }
    # an HTML-escaped ampersand, as some page builders leave it
    assert tilda_utm(_cookie("utm_source=vk&amp;utm_term=crm")) == {
        "utm_source": "vk",
        "utm_term": "crm",
    }


def test_values_encoded_in_the_page_url_are_decoded() -> None:
    # The script keeps each pair as the page URL had it, then encodes the whole again.
    pairs = "utm_campaign=" + quote("весна 2026") + "|||utm_content=a+b|||"
    assert tilda_utm(_cookie(pairs)) == {"utm_campaign": "весна 2026", "utm_content": "a b"}


def test_only_utm_tags_and_only_the_tilda_cookie() -> None:
    cookies = "utm_source=other; " + _cookie(
        "utm_source=google|||gclid=x|||foo=bar|||=|||utm_medium="
    )
    assert tilda_utm(cookies) == {"utm_source": "google"}
    assert tilda_utm("") == {}
    assert tilda_utm("TILDAUTM=") == {}
    assert tilda_utm("_ym_uid=1; TILDAUTMX=utm_source%3Dx") == {}


def test_hostile_bytes_never_raise() -> None:
    for junk in ("TILDAUTM=%E0%A4%A", "TILDAUTM=%%%|||=|||", "TILDAUTM=utm_source=" + "x" * 5000):
        assert isinstance(tilda_utm(junk), dict)
    assert len(tilda_utm("TILDAUTM=utm_source=" + "x" * 5000)["utm_source"]) == 200


def _post(fields: dict[str, str]) -> Leads:
    body = urlencode(fields).encode()
    request = HookRequest(
        "POST",
        body,
        "application/x-www-form-urlencoded",
        {},
        {},
        NOW,
        "application/x-www-form-urlencoded",
    )
    outcome = tilda.handle(SOURCE, request)
    assert isinstance(outcome, Leads)
    return outcome


def test_a_form_without_utm_fields_takes_the_cookie() -> None:
    cookies = _cookie("utm_source=yandex|||utm_medium=cpc|||utm_campaign=pg-clusters|||")
    lead = _post({"Phone": "+79035551234", "tranid": "1:2", "COOKIES": cookies})
    attribution = lead.messages[0].attribution
    assert (attribution.utm_source, attribution.utm_medium, attribution.utm_campaign) == (
        "yandex",
        "cpc",
        "pg-clusters",
    )
    assert "TILDAUTM" not in lead.messages[0].text


def test_utm_fields_of_the_form_win_over_the_cookie_as_a_whole() -> None:
    cookies = _cookie("utm_source=yandex|||utm_medium=cpc|||utm_campaign=pg-clusters|||")
    lead = _post(
        {"Phone": "+79035551234", "utm_source": "telegram", "COOKIES": cookies, "tranid": "1:3"}
    )
    attribution = lead.messages[0].attribution
    # one visit's tags, never a mix of the form's and the cookie's
    assert (attribution.utm_source, attribution.utm_medium, attribution.utm_campaign) == (
        "telegram",
        None,
        None,
    )
