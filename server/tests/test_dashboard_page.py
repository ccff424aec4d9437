"""The dashboard's HTML (dashboard/page.py): escaped, complete, the same fragments for the
first page and its refresh."""

from __future__ import annotations

import re
from typing import Any

from poolswitch.dashboard.page import chart, dashboard_page, duration, fragments, layout, login_page
from poolswitch.dashboard.session import OPEN_SESSION, Session

NOW = 1_800_000_000.0
HOSTILE = '<script>alert("x")</script>'


def document(reason: str = "rate_limited", outage: Any = None) -> dict[str, Any]:
    key = {
        "id": "a",
        "state": "cooling_down",
        "cooldown_until": NOW + 125,
        "reason": reason,
        "cooldown_source": "retry-after",
        "total_requests": 7,
        "successes": 5,
        "errors": 2,
        "failovers": 1,
    }
    pool = {
        "name": "openai",
        "route": "/",
        "strategy": "round_robin",
        "upstream_base_url": "https://api.example",
        "provider": "openai",
        "outage": outage,
        "keys": [key],
    }
    caller = {
        "id": "web",
        "pools": None,
        "rpm": 10,
        "max_concurrency": None,
        "requests_last_minute": 12,
        "in_flight": 1,
        "rejected": 3,
    }
    health = {"status": "ok", "reason": None, "outages": 0}
    return {"storage": "memory", "storage_health": health, "pools": [pool], "callers": [caller]}


def test_durations_read_like_the_script() -> None:
    assert [duration(s) for s in (-3, 0.2, 59, 60, 125, 3600, 7385)] == [
        "0 s",
        "1 s",
        "59 s",
        "1 min 00 s",
        "2 min 05 s",
        "1 h 00 min",
        "2 h 03 min",
    ]


def test_everything_from_upstream_is_escaped() -> None:
    text = dashboard_page(document(HOSTILE), {}, NOW, OPEN_SESSION, "n0nce")
    assert HOSTILE not in text and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert len(re.findall("<script", text)) == 1  # the page's own, with the nonce
    assert '<script nonce="n0nce">' in text and '<style nonce="n0nce">' in text


def test_the_page_shows_the_numbers() -> None:
    doc = document(outage={"kind": "network", "since": NOW - 30})
    text = dashboard_page(
        doc, {"openai": {"a": ["success", "rate_limited"]}}, NOW, OPEN_SESSION, "n"
    )
    assert f'data-until="{NOW + 125}">2 min 05 s<' in text
    assert "retry-after" in text and ">7<" in text and ">5<" in text and ">2<" in text
    assert "tripped" in text and "30 s" in text
    assert "12 / 10" in text and 'class="fill full"' in text and "no limit" in text
    assert 'class="o-success"' in text and 'class="o-rate_limited"' in text
    assert 'data-action="' not in text


def test_an_admin_gets_the_buttons() -> None:
    parts = fragments(document(), {}, NOW, Session("admin", "admin"))
    assert set(parts) == {"f-summary", "f-guard-0", "f-key-0-0", "f-callers"}
    for action in ("enable", "disable", "reset", "test", "drain"):
        assert f'data-action="{action}"' in parts["f-key-0-0"]
    assert 'data-seconds="600"' in parts["f-key-0-0"]


def test_the_chart_is_bounded() -> None:
    svg = chart(["success"] * 100, size=40)
    assert svg.count("<rect") == 40 and "last 40: 40 success" in svg
    assert chart([]).count('class="o-empty"') == 40


def test_the_layout_changes_with_the_keys() -> None:
    doc = document()
    before = layout(doc)
    doc["pools"][0]["keys"][0]["id"] = "b"
    assert layout(doc) != before


def test_the_login_page_escapes_its_message() -> None:
    assert HOSTILE not in login_page("n", HOSTILE)
    assert 'name="token" type="password"' in login_page("n")
