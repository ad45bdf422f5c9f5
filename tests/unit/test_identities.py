from __future__ import annotations

import pytest

from crm_core.contracts import IdentityRef
from crm_core.enums import IdentityKind
from crm_core.identities import InvalidIdentityError, normalize, normalize_email, normalize_phone


@pytest.mark.parametrize(
    "written",
    [
        "8 (916) 123-45-67",
        "+7 916 123 45 67",
        "79161234567",
        "89161234567",
        "+7(916)1234567",
        "007 916 123 45 67",
    ],
)
def test_russian_mobile_in_any_format_is_one_e164(written: str) -> None:
    assert normalize_phone(written, "RU") == "+79161234567"


def test_default_region_applies_to_national_numbers() -> None:
    assert normalize_phone("(650) 253-0000", "US") == "+16502530000"
    assert normalize_phone("+1 650 253 0000", "RU") == "+16502530000"


@pytest.mark.parametrize("bad", ["", "123", "call me", "+7 916 12"])
def test_invalid_phone_says_why(bad: str) -> None:
    with pytest.raises(InvalidIdentityError) as caught:
        normalize_phone(bad, "RU")
    assert caught.value.kind is IdentityKind.PHONE
    assert caught.value.reason


def test_email_lowercased_with_idna_domain() -> None:
    assert normalize_email("  Ivan.Petrov@Example.COM ") == "ivan.petrov@example.com"
    assert normalize_email("Ivan@Пример.РФ") == "ivan@xn--e1afmkfd.xn--p1ai"


@pytest.mark.parametrize(
    "variant",
    [
        "boris@sec.example.",  # a trailing dot of the domain
        "\uff42oris@sec.example",  # a full-width letter
        "\uff22\uff2f\uff32\uff29\uff33\uff20\uff53\uff45\uff43.example",  # all full-width
        "boris@sec\u3002example",  # an ideographic full stop
        "boris@sec\uff0eexample\uff61",  # full-width and half-width ideographic full stops
        "BORIS@SEC.EXAMPLE",
    ],
)
def test_variants_of_one_email_are_one_address(variant: str) -> None:
    assert normalize_email(variant) == "boris@sec.example"


@pytest.mark.parametrize("bad", ["ivan", "@example.com", "ivan@", "ivan@localhost", "a b@c.d"])
def test_invalid_email(bad: str) -> None:
    with pytest.raises(InvalidIdentityError):
        normalize_email(bad)


def test_telegram_identity_is_the_numeric_id() -> None:
    assert normalize(IdentityRef(IdentityKind.TELEGRAM, " 0042 "), "RU").value == "42"
    with pytest.raises(InvalidIdentityError):
        normalize(IdentityRef(IdentityKind.TELEGRAM, "@ivan"), "RU")


def test_site_visitor_id_is_kept_but_checked() -> None:
    assert normalize(IdentityRef(IdentityKind.SITE_VISITOR, "v-1.a:b"), "RU").value == "v-1.a:b"
    with pytest.raises(InvalidIdentityError):
        normalize(IdentityRef(IdentityKind.SITE_VISITOR, "<script>"), "RU")
