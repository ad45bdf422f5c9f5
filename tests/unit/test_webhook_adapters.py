"""The inbound adapters and signatures as pure functions, on the platforms' sample payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from crm_core.enums import Channel, IdentityKind
from webhooks import google_ads, meta, tilda, vk, zadarma
from webhooks.common import (
    Answer,
    BadSignatureError,
    HookRequest,
    Leads,
    MalformedBodyError,
    UnsupportedMediaError,
    attribution_from,
    parse_form,
)
from webhooks.signatures import (
    SignatureError,
    new_secret,
    same,
    standard_headers,
    standard_signature,
    verify_standard,
)
from webhooks.sources import Source, SourceConfigError, load_config

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _request(
    body: bytes | dict[str, Any],
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    method: str = "POST",
) -> HookRequest:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    return HookRequest(method, raw, content_type, headers or {}, query or {}, NOW, content_type)


def test_standard_webhooks_test_vector() -> None:
    # The test vector published with the Standard Webhooks reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = standard_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = standard_headers(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    headers["webhook-signature"] = "v1,bogus " + headers["webhook-signature"]
    assert verify_standard(secret, headers, body, now=1614265330) == "msg_p5jXN8AQM9LWM0D4loKWxJek"
    with pytest.raises(SignatureError):
        verify_standard(secret, headers, body + b" ", now=1614265330)
    with pytest.raises(SignatureError, match="timestamp"):
        verify_standard(secret, headers, body, now=1614265330 + 3600)


def test_generated_secrets_are_whsec() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert standard_signature(secret, "a", 1, b"{}").startswith("v1,")


def test_zadarma_signature_is_base64_of_the_hex_hmac() -> None:
    # base64_encode(hash_hmac('sha1', caller_id . called_did . call_start, secret))
    value = zadarma.signature("secret", "79161234567" + "74951234567" + "2026-03-02 13:00:00")
    assert len(value) == 56  # 40 hex characters in base64
    source = Source("z", "zadarma", options={"api_secret": "secret"})
    fields = {
        "event": "NOTIFY_START",
        "caller_id": "79161234567",
        "called_did": "74951234567",
        "call_start": "2026-03-02 13:00:00",
        "pbx_call_id": "in_1",
    }
    body = "&".join(f"{k}={v}" for k, v in fields.items()).replace(" ", "+").encode()
    form = "application/x-www-form-urlencoded"
    assert zadarma.handle(source, _request(body, form, {"Signature": value})) == Answer("ok")
    with pytest.raises(BadSignatureError):
        zadarma.handle(source, _request(body, form, {"Signature": "x"}))


def test_attribution_prefers_fields_then_page_then_referrer() -> None:
    found = attribution_from(
        {"utm_source": "field"},
        "https://a.test/?utm_source=page&utm_medium=cpc&fbclid=F",
        "https://ref.test/?utm_medium=ref&utm_term=t",
    )
    assert (found.utm_source, found.utm_medium, found.utm_term, found.fbclid) == (
        "field",
        "cpc",
        "t",
        "F",
    )
    assert found.landing_page == "https://a.test/?utm_source=page&utm_medium=cpc&fbclid=F"


def test_parse_form_refuses_other_media_and_bad_json() -> None:
    with pytest.raises(MalformedBodyError, match="JSON"):
        parse_form(_request(b"[1", "application/json"))
    with pytest.raises(MalformedBodyError, match="object"):
        parse_form(_request(b"[1]", "application/json"))
    with pytest.raises(UnsupportedMediaError, match="send JSON"):
        parse_form(_request(b"x", "text/plain"))
    fields = parse_form(_request(b"a=1&a=2&b=", "application/x-www-form-urlencoded")).fields
    assert fields == {"a": "1, 2", "b": ""}


def test_tilda_sample() -> None:
    source = Source("tilda", "tilda", options={})
    body = b"Name=Ivan&Phone=%2B79161234567&tranid=123%3A456&formid=form1"
    form = "application/x-www-form-urlencoded"
    assert tilda.handle(source, _request(b"test=test", form)) == Answer("ok")
    result = tilda.handle(source, _request(body, form))
    assert isinstance(result, Leads)
    message = result.messages[0]
    assert (message.channel, message.external_id, message.display_name) == (
        Channel.FORM,
        "tranid:123:456",
        "Ivan",
    )
    assert result.body_hash is None


def test_google_ads_needs_its_key_and_a_lead_id() -> None:
    source = Source("g", "google_ads", options={"google_key": "k"})
    with pytest.raises(BadSignatureError):
        google_ads.handle(source, _request({"google_key": "other"}))
    with pytest.raises(MalformedBodyError, match="lead_id"):
        google_ads.handle(source, _request({"google_key": "k"}))
    result = google_ads.handle(
        source,
        _request(
            {
                "google_key": "k",
                "lead_id": "L1",
                "is_test": False,
                "user_column_data": [
                    {"column_id": "FIRST_NAME", "string_value": "A"},
                    {"column_id": "LAST_NAME", "string_value": "B"},
                    {"column_id": "WORK_EMAIL", "string_value": "a@b.test"},
                ],
            }
        ),
    )
    message = result.messages[0]
    assert (message.display_name, message.channel) == ("A B", Channel.AD_LEAD)
    assert message.identities[0].kind == IdentityKind.EMAIL


def test_vk_answers_other_events_with_ok_and_checks_the_group() -> None:
    source = Source("vk", "vk", options={"confirmation": "c", "secret": "s", "group_id": "7"})
    assert vk.handle(source, _request({"type": "confirmation", "group_id": 7})) == Answer("c")
    with pytest.raises(BadSignatureError):
        vk.handle(source, _request({"type": "confirmation", "group_id": 8}))
    event = {"type": "message_new", "group_id": 7, "secret": "s"}
    assert vk.handle(source, _request(event)) == Answer("ok")


def test_meta_signature_and_lead_refs() -> None:
    source = Source("m", "meta", options={"app_secret": "s", "verify_token": "v"})
    with pytest.raises(BadSignatureError):
        meta.verify(source, _request({"entry": []}, headers={"X-Hub-Signature-256": "sha256=0"}))
    with pytest.raises(BadSignatureError):
        meta.challenge(source, _request(b"", query={"hub.mode": "subscribe"}, method="GET"))
    request = _request(
        {
            "entry": [
                {"changes": [{"field": "feed"}, {"field": "leadgen", "value": {"leadgen_id": 5}}]}
            ]
        }
    )
    assert [r.leadgen_id for r in meta.lead_refs(request)] == ["5"]


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"sources": [{"key": "a", "kind": "fax"}]}, "kind"),
        ({"sources": [{"key": "a", "kind": "vk", "secret": "s"}]}, "confirmation"),
        ({"sources": [{"key": "a b", "kind": "form", "secret": "s"}]}, "key"),
        ({"sources": [{"key": "a", "kind": "form", "secret": "s", "signing": "md5"}]}, "signing"),
        ({"sources": [{"key": "a", "kind": "form", "secret": "s", "colour": 1}]}, "colour"),
        ({"sources": [{"key": "a", "kind": "form", "secret": "s"}] * 2}, "twice"),
        ({"dedup_window_seconds": 0}, "dedup_window_seconds"),
        ({"allow_private_targets": "yes"}, "allow_private_targets"),
        ({"srcs": []}, "srcs"),
    ],
)
def test_bad_source_tables_name_the_key(table: dict[str, Any], problem: str) -> None:
    with pytest.raises(SourceConfigError, match=problem):
        load_config(table)


def test_a_source_never_shows_its_secret() -> None:
    config = load_config({"sources": [{"key": "a", "kind": "form", "secret": "hunter2"}]})
    assert "hunter2" not in repr(config)


@pytest.mark.parametrize(
    "given",
    [None, "", "caf\udce9", "\ud800", "s\u00e9cret", b"\xff", "secret\x00"],
)
def test_same_compares_any_presented_value_without_raising(given: str | bytes | None) -> None:
    assert same(given, "secret") is False
    assert same("caf\udce9", "caf\udce9") is True  # the bytes that were sent
    assert same("s\u00e9cret", "s\u00e9cret".encode()) is True


def test_a_secret_in_a_json_body_that_is_a_lone_surrogate_is_a_bad_signature() -> None:
    google = Source("g", "google_ads", options={"google_key": "k"})
    with pytest.raises(BadSignatureError):
        google_ads.handle(google, _request(b'{"google_key": "\\ud800"}'))
    group = Source("v", "vk", options={"confirmation": "c", "secret": "s"})
    with pytest.raises(BadSignatureError):
        vk.handle(group, _request(b'{"type": "lead_forms_new", "secret": "\\udce9"}'))


def test_json_sources_refuse_other_media_types() -> None:
    source = Source("g", "google_ads", options={"google_key": "k"})
    for media in ("text/plain", "application/x-www-form-urlencoded", "application/octet-stream"):
        with pytest.raises(UnsupportedMediaError):
            google_ads.handle(source, _request({"google_key": "k"}, media))
    with pytest.raises(MalformedBodyError, match="lead_id"):
        google_ads.handle(source, _request({"google_key": "k"}, "application/vnd.lead+json"))
