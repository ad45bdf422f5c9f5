"""The OpenAPI paths of the reports (hub/api/reports.py)."""

from __future__ import annotations

from typing import Any

from hub.api.doc_parts import query_param as _query
from hub.api.ids import id_schema

_COMMON = [
    _query("from", {"type": "string", "format": "date"}, "First day (default: the month's first)."),
    _query("to", {"type": "string", "format": "date"}, "Last day, inclusive (default: today)."),
    _query("team", {"type": "string"}, "Only this team's managers."),
    _query("manager_id", id_schema(), "Only this manager (a manager sees only their own)."),
    _query("funnel", {"type": "string"}, "Only deals of this funnel (its code)."),
    _query("channel", {"type": "string"}, "Only this channel (telegram, email, site_chat...)."),
    _query(
        "format",
        {"type": "string", "enum": ["json", "csv", "xlsx"]},
        "json; csv (the main table); xlsx (every table, a sheet each).",
    ),
]


def _report(summary: str, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "description": "Days and months in the company's time zone (the `timezone` "
            "setting). A manager sees their own numbers (their team's where it shares work); "
            "the head of sales and admins everyone's. Test leads are in no report.",
            "parameters": [*_COMMON, *(extra or [])],
            "responses": {
                "200": {
                    "description": "The report (JSON), or its export (CSV, XLSX).",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/csv": {"schema": {"type": "string"}},
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                            "schema": {"type": "string", "format": "binary"}
                        },
                    },
                },
            },
        }
    }


def paths() -> dict[str, Any]:
    return {
        "/api/v1/reports/activity": _report(
            "Manager activity: conversations, first response times (working and clock), "
            "replies, calls, call-backs, tasks, deals won and lost."
        ),
        "/api/v1/reports/funnel": _report(
            "Per funnel: deals reaching each stage, conversion, time in stage, lost "
            "reasons, win rate."
        ),
        "/api/v1/reports/sources": _report(
            "Leads, deals, won deals and revenue by channel, UTM source and campaign and "
            "source, by first and by last touch."
        ),
        "/api/v1/reports/calls": _report(
            "Calls per manager: inbound answered, outbound, missed, inbound answered "
            "within answer_within seconds of ringing, total and average talk time (per "
            "answered call), call-backs done within their SLA. A call counts for the "
            "manager who took it, else its conversation's manager; funnel does not apply.",
            [
                _query(
                    "answer_within",
                    {"type": "integer", "minimum": 1, "maximum": 3600},
                    "Seconds of ringing (answered_at - started_at) counted as quick (default 20).",
                ),
                _query(
                    "line",
                    {"type": "string", "maxLength": 120},
                    "Only calls on this line (its channel account's key).",
                ),
            ],
        ),
        "/api/v1/reports/abc-xyz": _report(
            "Clients (or products) by won revenue (ABC) and by its steadiness month to "
            "month (XYZ), with the 3x3 matrix.",
            [
                _query("by", {"type": "string", "enum": ["client", "product"]}, "What to rank."),
                _query(
                    "months",
                    {"type": "integer", "minimum": 2, "maximum": 36},
                    "Months of history for XYZ (default 6).",
                ),
                _query(
                    "x",
                    {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 10},
                    "X up to this coefficient of variation (default 0.10).",
                ),
                _query(
                    "y",
                    {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 10},
                    "Y up to this coefficient of variation (default 0.25).",
                ),
            ],
        ),
    }
