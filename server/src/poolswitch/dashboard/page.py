"""The dashboard's HTML, rendered from the `/status` document: the whole page for the first GET,
and the same parts as fragments (element id -> inner HTML) for the page's refresh.

Everything taken from the config or an upstream (key ids, reasons, caller ids, pool names) goes
through `html.escape`; no key value or token is ever in the document, so none can be here. Pure:
documents in, strings out.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from poolswitch.dashboard.assets import CSS, SCRIPT
from poolswitch.dashboard.session import Session

RECENT_WIDTH = 3
"""Pixels per outcome in a key's chart of recent outcomes."""
ACTIONS = (
    ("enable", "enable", None),
    ("disable", "disable", None),
    ("disable", "disable 10 min", 600),
    ("reset", "reset", None),
    ("test", "test", None),
    ("drain", "drain", None),
)
"""The admin buttons: (admin API action, label, `seconds` for the body)."""
KEY_COLUMNS = (
    ("key", ""),
    ("state", ""),
    ("reason", ""),
    ("returns in", ""),
    ("deadline from", ""),
    ("requests", "num"),
    ("successes", "num"),
    ("errors", "num"),
    ("failovers", "num"),
    ("recent outcomes", ""),
)
CALLER_COLUMNS = (
    ("caller", ""),
    ("pools", ""),
    ("requests, last minute", ""),
    ("in flight", ""),
    ("rejected", "num"),
)
LEGEND = (
    ("success", "success"),
    ("rate_limited", "rate limited / quota"),
    ("upstream_error", "upstream / network / timeout"),
    ("key_invalid", "key invalid"),
    ("client_error", "client error"),
)

Recent = Mapping[str, Mapping[str, Sequence[str]]]
"""Pool name -> key id -> the key's last attempt outcomes, oldest first."""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def duration(seconds: float) -> str:
    """`12 s`, `4 min 05 s`, `2 h 03 min` (the script's `fmt`)."""
    s = max(0, int(-(-seconds // 1)))
    if s >= 3600:
        return f"{s // 3600} h {s // 60 % 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def layout(doc: Mapping[str, Any]) -> str:
    """A digest of the pools and key ids shown: when it changes (a reload), the page reloads."""
    shape = [[p["name"], [k["id"] for k in p["keys"]]] for p in doc["pools"]]
    shape.append([c["id"] for c in doc["callers"]])
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]


def fragments(
    doc: Mapping[str, Any], recent: Recent, now: float, session: Session
) -> dict[str, str]:
    """Element id -> inner HTML, for every part of the page that changes."""
    parts = {"f-summary": summary(doc)}
    for p, pool in enumerate(doc["pools"]):
        parts[f"f-guard-{p}"] = guard(pool, now)
        outcomes = recent.get(pool["name"], {})
        for k, key in enumerate(pool["keys"]):
            parts[f"f-key-{p}-{k}"] = key_cells(key, outcomes.get(key["id"], ()), now, session)
    parts["f-callers"] = caller_rows(doc["callers"])
    return parts


def summary(doc: Mapping[str, Any]) -> str:
    health = doc["storage_health"]
    ok = health["status"] == "ok"
    text = f"storage {esc(doc['storage'])} {badge(health['status'], 'ok' if ok else 'degraded')}"
    if health.get("reason"):
        text += f' <span class="muted">{esc(health["reason"])}</span>'
    if health.get("outages"):
        text += f' <span class="muted">{esc(health["outages"])} outages</span>'
    version = doc.get("config_version")
    if version:
        text += f' <span class="muted">config {esc(version)}</span>'
    return text


def guard(pool: Mapping[str, Any], now: float) -> str:
    outage = pool.get("outage")
    if not outage:
        return f"outage guard {badge('not tripped', 'ok')}"
    since = outage.get("since")
    text = f"outage guard {badge('tripped', 'tripped')} {esc(outage.get('kind'))}"
    if since is not None:
        text += f' for <span data-since="{esc(since)}">{duration(now - float(since))}</span>'
    return text


def badge(text: str, kind: str) -> str:
    return f'<span class="badge {esc(kind)}">{esc(text)}</span>'


def key_cells(key: Mapping[str, Any], outcomes: Sequence[str], now: float, session: Session) -> str:
    until = key.get("cooldown_until")
    if until is not None and key["state"] != "available":
        returns = (
            f'<span class="countdown" data-until="{esc(until)}">{duration(until - now)}</span>'
        )
    elif key["state"] in ("disabled", "draining", "drained"):
        returns = '<span class="muted">when enabled</span>'
    else:
        returns = '<span class="muted">-</span>'
    cells = [
        f"<td><strong>{esc(key['id'])}</strong></td>",
        f"<td>{badge(key['state'].replace('_', ' '), key['state'])}</td>",
        f'<td class="reason">{esc(key.get("reason") or "-")}</td>',
        f"<td>{returns}</td>",
        f"<td>{esc(key.get('cooldown_source') or '-')}</td>",
        f'<td class="num">{esc(key["total_requests"])}</td>',
        f'<td class="num">{esc(key["successes"])}</td>',
        f'<td class="num">{esc(key["errors"])}</td>',
        f'<td class="num">{esc(key["failovers"])}</td>',
        f"<td>{chart(outcomes)}</td>",
    ]
    if session.admin:
        cells.append(f'<td><div class="actions">{buttons()}</div></td>')
    return "".join(cells)


def buttons() -> str:
    out = []
    for action, label, seconds in ACTIONS:
        extra = "" if seconds is None else f' data-seconds="{seconds}"'
        out.append(f'<button type="button" data-action="{action}"{extra}>{label}</button>')
    return "".join(out)


def chart(outcomes: Sequence[str], size: int = 40) -> str:
    """The last `size` outcomes as an inline SVG strip, newest on the right."""
    shown = list(outcomes)[-size:]
    width = size * RECENT_WIDTH
    rects = [
        f'<rect class="o-empty" x="{i * RECENT_WIDTH}" y="0" width="{RECENT_WIDTH - 1}" '
        'height="14"/>'
        for i in range(size - len(shown))
    ]
    start = size - len(shown)
    for i, outcome in enumerate(shown):
        rects.append(
            f'<rect class="o-{esc(outcome)}" x="{(start + i) * RECENT_WIDTH}" y="0" '
            f'width="{RECENT_WIDTH - 1}" height="14"/>'
        )
    counts: dict[str, int] = {}
    for outcome in shown:
        counts[outcome] = counts.get(outcome, 0) + 1
    title = ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "no attempts yet"
    return (
        f'<svg class="recent" width="{width}" height="14" viewBox="0 0 {width} 14" '
        f'role="img" aria-label="{esc(title)}"><title>last {len(shown)}: {esc(title)}</title>'
        f"{''.join(rects)}</svg>"
    )


def use_bar(used: int, limit: int | None) -> str:
    """`used / limit` with a small bar (or just `used` when there is no limit)."""
    if not limit:
        return f'<span class="num">{esc(used)}</span> <span class="muted">no limit</span>'
    share = min(used / limit, 1.0)
    full = " full" if used >= limit else ""
    return (
        f'<svg width="80" height="8" viewBox="0 0 80 8" role="img" aria-label="{used} of '
        f'{limit}"><rect class="track" width="80" height="8"/><rect class="fill{full}" '
        f'width="{round(80 * share, 1)}" height="8"/></svg> '
        f'<span class="use">{esc(used)} / {esc(limit)}</span>'
    )


def caller_rows(callers: Sequence[Mapping[str, Any]]) -> str:
    if not callers:
        return (
            f'<tr><td colspan="{len(CALLER_COLUMNS)}" class="muted">no callers configured</td></tr>'
        )
    rows = []
    for c in callers:
        pools = "all" if c["pools"] is None else ", ".join(c["pools"])
        rows.append(
            f'<tr data-caller="{esc(c["id"])}"><td><strong>{esc(c["id"])}</strong></td>'
            f"<td>{esc(pools)}</td>"
            f'<td class="rpm">{use_bar(c["requests_last_minute"], c["rpm"])}</td>'
            f'<td class="concurrency">{use_bar(c["in_flight"], c["max_concurrency"])}</td>'
            f'<td class="num rejected">{esc(c["rejected"])}</td></tr>'
        )
    return "".join(rows)


def _head(columns: Sequence[tuple[str, str]], extra: str = "") -> str:
    cells = "".join(
        f'<th class="{cls}">{esc(name)}</th>' if cls else f"<th>{esc(name)}</th>"
        for name, cls in columns
    )
    return f"<thead><tr>{cells}{extra}</tr></thead>"


def _document(title: str, nonce: str, body: str, attributes: str = "") -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f'<title>{esc(title)}</title><style nonce="{nonce}">{CSS}</style></head>'
        f"<body{attributes}>{body}</body></html>"
    )


def dashboard_page(
    doc: Mapping[str, Any], recent: Recent, now: float, session: Session, nonce: str
) -> str:
    """The whole page, with the numbers in it (it works without the script, just stale)."""
    parts = fragments(doc, recent, now, session)
    sections = []
    actions = "<th>actions</th>" if session.admin else ""
    for p, pool in enumerate(doc["pools"]):
        rows = "".join(
            f'<tr id="f-key-{p}-{k}" data-pool="{esc(pool["name"])}" data-key="{esc(key["id"])}">'
            f"{parts[f'f-key-{p}-{k}']}</tr>"
            for k, key in enumerate(pool["keys"])
        )
        sections.append(
            f'<section class="pool" data-pool="{esc(pool["name"])}">'
            f"<h2>{esc(pool['name'])} <small>{esc(pool['route'])} &middot; "
            f"{esc(pool['strategy'])} &middot; {esc(pool['provider'])} &middot; "
            f"{esc(pool['upstream_base_url'])}</small></h2>"
            f'<div class="guard" id="f-guard-{p}">{parts[f"f-guard-{p}"]}</div>'
            f'<div class="scroll"><table>{_head(KEY_COLUMNS, actions)}<tbody>{rows}</tbody>'
            "</table></div></section>"
        )
    legend = "".join(
        f'<svg width="10" height="10" viewBox="0 0 10 10"><rect class="o-{o}" width="10" '
        f'height="10"/></svg>{esc(label)}'
        for o, label in LEGEND
    )
    who = {"admin": "admin", "open": "open, read-only"}.get(
        session.role, f"caller {session.who}, read-only"
    )
    sign_out = (
        ""
        if session.role == "open"
        else '<form method="post" action="/dashboard/logout"><button type="submit">'
        "sign out</button></form>"
    )
    body = (
        f'<header><h1>PoolSwitch</h1><span id="f-summary">{parts["f-summary"]}</span>'
        f'<span id="updated" class="muted">rendered by the server</span>'
        f'<span class="who">{esc(who)}</span>{sign_out}</header>'
        f'<main><p id="notice" role="status"></p>{"".join(sections)}'
        f'<p class="legend">recent outcomes, newest on the right:{legend}</p>'
        f"<section><h2>Callers</h2><table>{_head(CALLER_COLUMNS)}"
        f'<tbody id="f-callers">{parts["f-callers"]}</tbody></table></section></main>'
        f'<script nonce="{nonce}">{SCRIPT}</script>'
    )
    attributes = (
        f' data-now="{esc(now)}" data-layout="{layout(doc)}" data-role="{esc(session.role)}"'
    )
    return _document("PoolSwitch dashboard", nonce, body, attributes)


def login_page(nonce: str, message: str | None = None) -> str:
    """The sign-in form: the admin token, or a caller token for a read-only view."""
    error = "" if message is None else f'<p class="error" role="alert">{esc(message)}</p>'
    body = (
        '<main><section class="login"><h2>PoolSwitch dashboard</h2>'
        "<p>Sign in with the admin token, or a caller token for a read-only view.</p>"
        f'{error}<form method="post" action="/dashboard/login">'
        '<label for="token">token</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" '
        'required autofocus><button type="submit">sign in</button></form></section></main>'
    )
    return _document("PoolSwitch dashboard: sign in", nonce, body)
