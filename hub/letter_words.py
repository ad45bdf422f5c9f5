"""The Monday letter's words: subject, plain text and a simple HTML part, in the head's
language (``ru`` or ``en``), from the figures its outbox row carries."""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class Words:
    months: tuple[str, ...]
    subject: str
    hello: str
    week: str
    new_deals: str
    won: str
    lost: str
    conversations: str
    median: str
    no_median: str
    by_manager: str
    manager_line: str
    unassigned: str
    nobody: str
    link: str
    decimal_mark: str
    thousands: str


WORDS = {
    "en": Words(
        months=("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        subject="Weekly sales summary, {span}",
        hello="Hello, {name}!",
        week="The week {span} {year} ({timezone}):",
        new_deals="New leads (deals created): {n}",
        won="Deals won: {n}, revenue {amount}",
        lost="Deals lost: {n}",
        conversations="Conversations received: {received}, answered: {answered}",
        median="median first response {minutes} min (working time)",
        no_median="no first responses",
        by_manager="By manager:",
        manager_line=(
            "{name}: conversations {received}, answered {answered}, {median}; "
            "won {won} ({amount}), lost {lost}"
        ),
        unassigned="Unassigned",
        nobody="No activity this week.",
        link="All reports: {url}",
        decimal_mark=".",
        thousands=",",
    ),
    "ru": Words(
        months=(
            "января",
            "февраля",
            "марта",
            "апреля",
            "мая",
            "июня",
            "июля",
            "августа",
            "сентября",
            "октября",
            "ноября",
            "декабря",
        ),
        subject="Итоги недели продаж, {span}",
        hello="Здравствуйте, {name}!",
        week="Неделя {span} {year} ({timezone}):",
        new_deals="Новые заявки (созданные сделки): {n}",
        won="Выиграно сделок: {n}, выручка {amount}",
        lost="Проиграно сделок: {n}",
        conversations="Обращений получено: {received}, отвечено: {answered}",
        median="медиана первого ответа {minutes} мин (рабочее время)",
        no_median="первых ответов нет",
        by_manager="По менеджерам:",
        manager_line=(
            "{name}: обращений {received}, отвечено {answered}, {median}; "
            "выиграно {won} ({amount}), проиграно {lost}"
        ),
        unassigned="Без ответственного",
        nobody="За неделю активности не было.",
        link="Все отчёты: {url}",
        decimal_mark=",",
        thousands=" ",
    ),
}


def words_for(locale: str | None) -> Words:
    return WORDS.get((locale or "").lower()[:2], WORDS["en"])


def span(first: date, last: date, words: Words) -> str:
    """``23-29 Nov``, or ``30 Nov - 6 Dec`` across a month's end."""
    if first.month == last.month:
        return f"{first.day}-{last.day} {words.months[last.month - 1]}"
    return (
        f"{first.day} {words.months[first.month - 1]} - {last.day} {words.months[last.month - 1]}"
    )


def amount(value: str, words: Words) -> str:
    """``1234567.5`` as ``1,234,567.50`` (en) or ``1 234 567,50`` (ru)."""
    text = f"{Decimal(value):,.2f}"
    return text.replace(",", "\0").replace(".", words.decimal_mark).replace("\0", words.thousands)


def _median(minutes: float | None, words: Words) -> str:
    if minutes is None:
        return words.no_median
    shown = f"{minutes:g}".replace(".", words.decimal_mark)
    return words.median.format(minutes=shown)


@dataclass(frozen=True, slots=True)
class Letter:
    subject: str
    text: str
    html: str


def compose(payload: Mapping[str, Any]) -> Letter:
    """The letter of one outbox row (see :func:`crm_core.weekly_letter.queue_letters`)."""
    words = words_for(payload.get("locale"))
    first = date.fromisoformat(payload["week"]["from"])
    last = date.fromisoformat(payload["week"]["to"])
    week_span = span(first, last, words)
    totals = payload["totals"]
    url = str(payload["link"])
    head = [
        words.week.format(span=week_span, year=last.year, timezone=payload["week"]["timezone"]),
        words.new_deals.format(n=totals["new_deals"]),
        words.won.format(n=totals["won"], amount=amount(totals["revenue"], words)),
        words.lost.format(n=totals["lost"]),
        words.conversations.format(received=totals["received"], answered=totals["answered"])
        + "; "
        + _median(totals["median_first_response_minutes"], words),
    ]
    lines = [
        words.manager_line.format(
            name=row["name"] or words.unassigned,
            received=row["received"],
            answered=row["answered"],
            median=_median(row["median_first_response_minutes"], words),
            won=row["won"],
            amount=amount(row["revenue"], words),
            lost=row["lost"],
        )
        for row in payload["managers"]
    ]
    hello = words.hello.format(name=payload.get("name") or "")
    link = words.link.format(url=url)
    text_lines = [hello, "", head[0], *head[1:], "", words.by_manager]
    text_lines += [f"- {line}" for line in lines] or [words.nobody]
    text_lines += ["", link, ""]
    e = html.escape
    items = "".join(f"<li>{e(line)}</li>" for line in head[1:])
    people = "".join(f"<li>{e(line)}</li>" for line in lines) or f"<li>{e(words.nobody)}</li>"
    anchor = f'<a href="{e(url, quote=True)}">{e(url)}</a>'
    body = (
        f"<!DOCTYPE html><html><body><p>{e(hello)}</p><p>{e(head[0])}</p><ul>{items}</ul>"
        f"<p>{e(words.by_manager)}</p><ul>{people}</ul>"
        f"<p>{e(words.link.format(url='')).strip()} {anchor}</p></body></html>"
    )
    return Letter(words.subject.format(span=week_span), "\n".join(text_lines), body)
