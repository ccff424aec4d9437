"""The page's style sheet and script, inlined with the response's CSP nonce: nothing is fetched
from anywhere else (no CDN, no web fonts), so the page works offline.

The script polls `GET /dashboard/state` every `POLL_MS`, swaps in the server-rendered fragments
that changed (the server escapes everything; the script only moves its HTML), ticks the
countdowns between polls, and posts the admin buttons to the admin API with
`x-poolswitch-csrf: 1`."""

from __future__ import annotations

POLL_MS = 1000

CSS = """
:root { color-scheme: light; --fg: #1d2330; --muted: #5d6677; --line: #d9dde5;
  --bg: #f5f6f8; --card: #ffffff; --ok: #1f9d55; --warn: #d98a00; --bad: #d0342c;
  --err: #e8590c; --client: #6b7bd6; --empty: #e6e8ee; --accent: #2f5bd3; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 12px 20px;
  padding: 12px 20px; background: var(--card); border-bottom: 1px solid var(--line); }
header h1 { font-size: 18px; margin: 0; }
header .who { margin-left: auto; color: var(--muted); }
header form { margin: 0; }
main { padding: 16px 20px; max-width: 1400px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 6px;
  padding: 12px 16px; margin-bottom: 16px; }
h2 { font-size: 16px; margin: 0 0 4px; }
h2 small { font-weight: normal; color: var(--muted); }
.guard { margin: 4px 0 10px; color: var(--muted); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 6px; border-bottom: 1px solid var(--line);
  white-space: nowrap; }
th { font-weight: 600; color: var(--muted); font-size: 11px; text-transform: uppercase;
  white-space: normal; vertical-align: bottom; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.reason { white-space: normal; max-width: 200px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  font-weight: 600; color: #fff; background: var(--muted); }
.badge.available, .badge.ok { background: var(--ok); }
.badge.cooling_down, .badge.degraded, .badge.draining { background: var(--warn); }
.badge.disabled, .badge.tripped { background: var(--bad); }
.countdown { font-variant-numeric: tabular-nums; }
.muted { color: var(--muted); }
svg { vertical-align: middle; }
rect.o-empty { fill: var(--empty); }
rect.o-success { fill: var(--ok); }
rect.o-rate_limited, rect.o-quota_exhausted { fill: var(--warn); }
rect.o-key_invalid { fill: var(--bad); }
rect.o-upstream_overloaded, rect.o-upstream_error, rect.o-network_error, rect.o-timeout {
  fill: var(--err); }
rect.o-client_error { fill: var(--client); }
rect.track { fill: var(--empty); }
rect.fill { fill: var(--accent); }
rect.fill.full { fill: var(--bad); }
button { font: inherit; font-size: 12px; padding: 1px 6px; border: 1px solid var(--line);
  border-radius: 4px; background: #fff; cursor: pointer; }
button:hover { border-color: var(--accent); }
button:disabled { opacity: 0.5; cursor: wait; }
.actions { display: grid; grid-template-columns: repeat(3, auto); gap: 4px;
  justify-content: start; }
.scroll { overflow-x: auto; }
#notice { min-height: 1.4em; margin: 0 0 12px; }
#notice.error { color: var(--bad); }
.legend { color: var(--muted); font-size: 12px; margin-top: 8px; }
.legend svg { margin: 0 2px 0 10px; }
.login { max-width: 360px; margin: 12vh auto; }
.login label { display: block; margin: 8px 0 4px; }
.login input { width: 100%; font: inherit; padding: 6px 8px; border: 1px solid var(--line);
  border-radius: 4px; }
.login button { margin-top: 12px; font-size: 14px; padding: 6px 14px; }
.login .error { color: var(--bad); }
"""

SCRIPT = """
(() => {
  "use strict";
  const body = document.body;
  const layout = body.dataset.layout;
  let offset = Number(body.dataset.now) - Date.now() / 1000;
  const shown = new Map();
  const notice = document.getElementById("notice");
  const updated = document.getElementById("updated");

  function two(n) { return String(n).padStart(2, "0"); }
  function fmt(seconds) {
    const s = Math.max(0, Math.ceil(seconds));
    if (s >= 3600) return Math.floor(s / 3600) + " h " + two(Math.floor(s / 60) % 60) + " min";
    if (s >= 60) return Math.floor(s / 60) + " min " + two(s % 60) + " s";
    return s + " s";
  }
  function tick() {
    const now = Date.now() / 1000 + offset;
    for (const el of document.querySelectorAll("[data-until]")) {
      el.textContent = fmt(Number(el.dataset.until) - now);
    }
    for (const el of document.querySelectorAll("[data-since]")) {
      el.textContent = fmt(now - Number(el.dataset.since));
    }
  }
  function say(text, error) {
    notice.textContent = text;
    notice.className = error ? "error" : "";
  }
  async function poll() {
    let resp;
    try {
      resp = await fetch("/dashboard/state", {
        cache: "no-store", credentials: "same-origin", headers: {accept: "application/json"},
      });
    } catch (err) {
      updated.textContent = "cannot reach the proxy";
      return;
    }
    if (resp.status === 401) { location.reload(); return; }
    if (!resp.ok) { updated.textContent = "refresh failed: HTTP " + resp.status; return; }
    const doc = await resp.json();
    const view = doc.dashboard;
    if (view.layout !== layout) { location.reload(); return; }
    offset = view.now - Date.now() / 1000;
    for (const [id, html] of Object.entries(view.html)) {
      if (shown.get(id) === html) continue;
      const el = document.getElementById(id);
      if (el === null) { location.reload(); return; }
      el.innerHTML = html;
      shown.set(id, html);
    }
    tick();
    updated.textContent = "updated " + new Date().toLocaleTimeString();
  }
  async function loop() {
    try { await poll(); } finally { setTimeout(loop, POLL_MS); }
  }
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (button === null) return;
    const row = button.closest("tr[data-key]");
    const action = button.dataset.action;
    const pool = row.dataset.pool;
    const key = row.dataset.key;
    const url = "/poolswitch/admin/pools/" + encodeURIComponent(pool) + "/keys/" +
      encodeURIComponent(key) + "/" + encodeURIComponent(action);
    const init = {method: "POST", credentials: "same-origin",
      headers: {"x-poolswitch-csrf": "1"}};
    if (button.dataset.seconds) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify({seconds: Number(button.dataset.seconds)});
    }
    button.disabled = true;
    say(button.textContent + " " + key + " ...", false);
    try {
      const resp = await fetch(url, init);
      const answer = await resp.json().catch(() => null);
      if (resp.ok) {
        const result = answer && (answer.result || answer.outcome || answer.state);
        say(button.textContent + " " + key + ": " + (result || "done"), false);
      } else {
        const message = answer && answer.error ? answer.error.message : "";
        say(button.textContent + " " + key + " failed: " + (message || "HTTP " + resp.status),
          true);
      }
    } catch (err) {
      say(button.textContent + " " + key + " failed: cannot reach the proxy", true);
    } finally {
      button.disabled = false;
      poll();
    }
  });
  setInterval(tick, 500);
  setTimeout(loop, POLL_MS);
})();
""".replace("POLL_MS", str(POLL_MS))
