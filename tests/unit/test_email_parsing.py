"""The email connector's pure parts: charsets, HTML, quotes, guards, threads, config."""

from __future__ import annotations

import base64
from email.message import EmailMessage

import pytest

from connectors.email.charsets import decode_text
from connectors.email.config import MailboxConfigError, parse_mailboxes
from connectors.email.parser import parse
from connectors.email.text import split_reply
from connectors.email.threads import conversation_hint, reply_subject, thread_refs

RUSSIAN = "Здравствуйте! Хочу записаться на вебинар, сколько стоит участие?"


def _letter(body: bytes, charset: str | None, *, headers: str = "", cte: str = "8bit") -> bytes:
    ctype = "text/plain" + (f"; charset={charset}" if charset else "")
    head = (
        "From: =?koi8-r?b?98HTyczJyg==?= <Vasily@Example.RU>\r\n"
        "To: sales@example.test\r\nSubject: =?windows-1251?b?wu7v8O7x?=\r\n"
        "Message-ID: <letter-1@example.ru>\r\nDate: Mon, 02 Mar 2026 10:00:00 +0300\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: {cte}\r\n"
        f"{headers}\r\n"
    ).encode()
    if cte == "base64":
        body = base64.encodebytes(body)
    return head + body


@pytest.mark.parametrize("charset", ["utf-8", "windows-1251", "koi8-r", "iso-8859-5"])
@pytest.mark.parametrize("declared", ["right", "missing", "latin-1", "wrong"])
def test_russian_in_any_charset_however_declared(charset: str, declared: str) -> None:
    data = RUSSIAN.encode(charset)
    label = {
        "right": charset,
        "missing": None,
        "latin-1": "iso-8859-1",
        "wrong": "koi8-r" if charset != "koi8-r" else "windows-1251",
    }[declared]
    assert decode_text(data, label) == RUSSIAN


def test_western_latin1_stays_latin1() -> None:
    assert decode_text("Café crème, s'il vous plaît".encode("latin-1"), "iso-8859-1") == (
        "Café crème, s'il vous plaît"
    )


@pytest.mark.parametrize("charset", ["windows-1251", "koi8-r"])
@pytest.mark.parametrize("cte", ["8bit", "base64"])
def test_letter_headers_and_body(charset: str, cte: str) -> None:
    mail = parse(_letter(RUSSIAN.encode(charset), charset, cte=cte))
    assert not mail.malformed
    assert mail.sender == "vasily@example.ru"
    assert mail.display_name == "Василий"
    assert mail.subject == "Вопрос"
    assert mail.text == RUSSIAN
    assert mail.message_id == "letter-1@example.ru"
    assert mail.occurred_at is not None
    assert mail.occurred_at.utcoffset() is not None


def test_raw_8bit_subject_in_windows_1251() -> None:
    raw = _letter(b"hi", "us-ascii").replace(
        b"Subject: =?windows-1251?b?wu7v8O7x?=", "Subject: Вопрос по курсу".encode("cp1251")
    )
    assert parse(raw).subject == "Вопрос по курсу"


def test_html_only_mail_becomes_text_and_sanitized_html() -> None:
    html = (
        "<html><head><style>p{color:red}</style></head><body><p>Добрый день!</p>"
        "<p>Нужен <b>счёт</b><br>на оплату</p><script>alert(1)</script>"
        '<img src="x" onerror="alert(2)"></body></html>'
    )
    mail = EmailMessage()
    mail["From"] = "client@example.org"
    mail["Message-ID"] = "<h@example.org>"
    mail.set_content(html, subtype="html")
    parsed = parse(mail.as_bytes())
    assert parsed.text == "Добрый день!\n\nНужен счёт\nна оплату"
    assert parsed.html is not None
    assert "script" not in parsed.html
    assert "onerror" not in parsed.html
    assert "<b>счёт</b>" in parsed.html


def test_reply_quote_and_signature_are_set_apart() -> None:
    text = (
        "Да, подходит. Давайте в четверг.\n\n-- \nИван Петров\n+7 916 123-45-67\n\n"
        "пн, 2 мар. 2026 г. в 10:00, Sales <sales@example.test>:\n"
        "Вт, 3 марта 2026, Sales пишет:\n> Можем созвониться в четверг?\n> \n"
    )
    split = split_reply(text)
    assert split.new == "Да, подходит. Давайте в четверг."
    assert split.signature.startswith("Иван Петров")
    assert "Можем созвониться" in split.quoted


def test_inline_answers_between_quotes_stay_new_text() -> None:
    text = "> Когда удобно?\nВ четверг\n> Какой тариф?\nБазовый"
    assert split_reply(text).new == text


def test_english_client_quote() -> None:
    split = split_reply("Sounds good.\n\nOn Mon, Mar 2, 2026 at 10:00 Sales wrote:\n> Thursday?")
    assert split.new == "Sounds good."


def test_attachments_and_inline_images() -> None:
    mail = EmailMessage()
    mail["From"] = "Client <client@example.org>"
    mail["Subject"] = "Документы"
    mail.set_content("См. вложение")
    mail.add_alternative('<p>См. вложение <img src="cid:logo@x"></p>', subtype="html")
    html_part = mail.get_payload()[1]  # type: ignore[index]
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(b"\x89PNG...", "image", "png", cid="<logo@x>")
    mail.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="счёт.pdf")
    parsed = parse(mail.as_bytes())
    assert parsed.text == "См. вложение"
    names = {(p.name, p.content_type, p.inline) for p in parsed.parts}
    assert ("счёт.pdf", "application/pdf", False) in names
    assert any(p.content_type == "image/png" and p.content_id == "logo@x" for p in parsed.parts)


def test_garbage_is_flagged_not_raised() -> None:
    parsed = parse(b"\x00\xff\xfe not a mail at all")
    assert parsed.malformed
    assert parsed.message_id.startswith("sha256:")


def test_missing_message_id_falls_back_to_a_hash_of_the_bytes() -> None:
    raw = b"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"
    assert parse(raw).message_id == parse(raw).message_id
    assert parse(raw).message_id.startswith("sha256:")
    assert parse(raw + b"!").message_id != parse(raw).message_id


@pytest.mark.parametrize(
    "header",
    [
        "Auto-Submitted: auto-replied",
        "Auto-Submitted: auto-generated",
        "X-Autoreply: yes",
        "Precedence: bulk",
        "Precedence: junk",
        "Precedence: list",
    ],
)
def test_auto_replies(header: str) -> None:
    parsed = parse(_letter(b"I am away", "us-ascii", headers=header + "\r\n"))
    assert parsed.auto_reply
    assert not parsed.bounce


def test_auto_submitted_no_is_a_person() -> None:
    assert not parse(_letter(b"hi", "us-ascii", headers="Auto-Submitted: no\r\n")).auto_reply


BOUNCE = (
    b"From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\n"
    b"To: sales@example.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
    b"Message-ID: <bounce-1@mx.example.test>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
    b"--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
    b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
    b"Reporting-MTA: dns; mx.example.test\r\n\r\n"
    b"Final-Recipient: rfc822; Gone@Example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
    b"Final-Recipient: rfc822; later@example.org\r\nAction: delayed\r\nStatus: 4.4.1\r\n\r\n"
    b"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: sales@example.test\r\n"
    b"--B--\r\n"
)


def test_bounce_names_the_failed_recipient_only() -> None:
    parsed = parse(BOUNCE)
    assert parsed.bounce
    assert parsed.failed_recipients == ("gone@example.org",)


def test_thread_refs_in_reply_to_first_then_references_newest_first() -> None:
    refs = thread_refs("<c@x>", "<a@x> <b@x>\r\n <c@x>")
    assert refs == ("c@x", "b@x", "a@x")


def test_reply_subject_and_token() -> None:
    assert reply_subject("RE: Fwd: Re: Вопрос", 12) == "Re: Вопрос [#C12]"
    assert reply_subject("Re: Вопрос [#C12]", 12) == "Re: Вопрос [#C12]"
    assert reply_subject(None, 7) == "Re: [#C7]"
    assert conversation_hint("Re: Вопрос [#C12]") == 12
    assert conversation_hint("Re: Вопрос #12") is None


MAILBOX = {
    "key": "sales",
    "address": "Sales@Example.test",
    "imap": {"host": "127.0.0.1", "port": 143, "security": "none", "user": "u", "password": "pw1"},
    "smtp": {"host": "127.0.0.1", "security": "starttls", "user": "u", "password": "pw2"},
}


def test_config_reads_mailboxes_and_hides_passwords() -> None:
    (mailbox,) = parse_mailboxes({"mailboxes": [MAILBOX]})
    assert mailbox.address == "sales@example.test"
    assert mailbox.smtp.port == 587
    assert "pw1" not in repr(mailbox)
    assert "pw2" not in repr(mailbox)
    assert "password" not in mailbox.imap.public()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"address": "nobody"}, "mailboxes[0].address"),
        ({"imap": {**MAILBOX["imap"], "security": "ssl"}}, "mailboxes[0].imap.security"),  # type: ignore[dict-item]
        ({"smtp": {**MAILBOX["smtp"], "port": "25"}}, "mailboxes[0].smtp.port"),  # type: ignore[dict-item]
        ({"imap": None}, "mailboxes[0].imap"),
        ({"key": ""}, "mailboxes[0].key"),
        ({"smtp": {**MAILBOX["smtp"], "ca_file": "/no/such/ca.pem"}}, "mailboxes[0].smtp.ca_file"),  # type: ignore[dict-item]
    ],
)
def test_config_errors_name_the_key(change: dict[str, object], named: str) -> None:
    with pytest.raises(MailboxConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        parse_mailboxes({"mailboxes": [{**MAILBOX, **change}]})


def test_a_bad_mailbox_stops_the_hub_with_the_key_named() -> None:
    from hub.app import create_app
    from hub.settings import Settings, SettingsError

    settings = Settings(channels={"email": {"mailboxes": [{**MAILBOX, "address": "nobody"}]}})
    with pytest.raises(SettingsError, match=r"channels\.email\.mailboxes\[0\]\.address"):
        create_app(settings)
