"""The routing document's ``automation`` section: every malformed shape is an
AutomationError naming the place (a 400 from ``PUT /api/v1/routing``), never a crash."""

from __future__ import annotations

from typing import Any

import pytest

from crm_core.automation import AutomationError, load_automation


@pytest.mark.parametrize(
    ("section", "where"),
    [
        (["not", "a", "mapping"], "automation"),
        ({"triggers": [None]}, "automation.triggers[0]"),
        ({"triggers": ["deal.stage_changed"]}, "automation.triggers[0]"),
        ({"stages": [7]}, "automation.stages[0]"),
        (
            {"triggers": [{"on": "client_replied", "funnel": "f", "to": "won", "from": [{}]}]},
            "automation.triggers[0].from",
        ),
        (
            {"triggers": [{"on": "client_replied", "funnel": "f", "to": "won", "task_kind": 3}]},
            "automation.triggers[0].task_kind",
        ),
    ],
)
def test_a_malformed_section_is_an_error_naming_the_place(section: Any, where: str) -> None:
    with pytest.raises(AutomationError) as raised:
        load_automation(section)
    assert where in str(raised.value)
