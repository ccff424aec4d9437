"""The dashboard (`dashboard: true`) over real loopback HTTP, and in a real headless Chromium.

The browser test signs in through the form, checks the page's numbers against `GET /status`,
clicks "disable", sees the key change state, reads a parked key's countdown and inspects the
screenshot it saves. The HTTP tests cover the sign-in, the session cookie, the admin API's CSRF
guard, the security headers and that no key value or token is ever in a page.

Set `POOLSWITCH_DASHBOARD_SCREENSHOT=<path>` to keep the browser test's screenshot (docs/
dashboard.png is one).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from poolswitch_testing.fake_upstream import FakeUpstream

from conftest import KEYS, ProxyFactory, RunningProxy, make_config

ADMIN = "admin-token-0123456789abcdef"
WEB = "tok-web-0123456789abcdef"
BATCH = "tok-batch-0123456789abcdef"
CALLERS = [
    {"id": "web", "token": WEB, "rpm": 600, "max_concurrency": 4},
    {"id": "batch", "token": BATCH},
]
SECRETS = (ADMIN, WEB, BATCH, *KEYS)
WIDTH, HEIGHT = 1280, 720
WAIT = 15  # seconds, for every wait on the page
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def secured(**settings: Any) -> dict[str, Any]:
    return {"dashboard": True, "admin_token": ADMIN, "callers": CALLERS, **settings}


@contextlib.contextmanager
def signed_in(proxy: RunningProxy, token: str) -> Iterator[httpx.Client]:
    """A client signed in through the form (it keeps the session cookie)."""
    with proxy.client() as client:
        resp = client.post("/dashboard/login", data={"token": token})
        assert resp.status_code == 303 and resp.headers["location"] == "/dashboard"
        assert "poolswitch_session" in client.cookies
        yield client


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# ---- over HTTP ----


def test_off_the_path_is_proxied(make_proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    proxy = make_proxy(admin_token=ADMIN)
    with proxy.client() as client:
        assert client.get("/dashboard").status_code == 200
    assert [a.path for a in upstream.attempts] == ["/dashboard"]


def test_without_a_session_the_sign_in_form(make_proxy: ProxyFactory) -> None:
    proxy = make_proxy(**secured())
    with proxy.client() as client:
        resp = client.get("/dashboard")
        assert resp.status_code == 401
        assert '<form method="post" action="/dashboard/login">' in resp.text
        assert 'data-action="' not in resp.text and "tr data-key" not in resp.text
        csp = resp.headers["content-security-policy"]
        nonce = re.search(r"'nonce-([^']+)'", csp)
        assert nonce is not None and f'<style nonce="{nonce.group(1)}">' in resp.text
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert resp.headers["x-frame-options"] == "DENY"
        assert resp.headers["cache-control"] == "no-store"
        assert resp.headers["referrer-policy"] == "same-origin"
        state = client.get("/dashboard/state")
        assert state.status_code == 401 and state.json()["error"]["code"] == "unauthorized"


def test_a_wrong_token_gets_the_form_again_without_it(
    make_proxy: ProxyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = make_proxy(**secured())
    wrong = "not-the-token-0123456789"
    with proxy.client() as client:
        resp = client.post("/dashboard/login", data={"token": wrong})
        assert resp.status_code == 401 and "not valid" in resp.text
        assert wrong not in resp.text and "set-cookie" not in resp.headers
        assert (
            client.get("/dashboard", headers={"authorization": f"Bearer {wrong}"}).status_code
            == 401
        )
        cookie = f"poolswitch_session=v1.{int(time.time()) + 60}.{'0' * 64}"
        assert client.get("/dashboard", headers={"cookie": cookie}).status_code == 401
        form = client.post(
            "/dashboard/login", content=b"{}", headers={"content-type": "application/json"}
        )
        assert form.status_code == 400
        big = client.post("/dashboard/login", data={"token": "x" * 5000})
        assert big.status_code == 413
        assert client.post("/dashboard/login", data={"token": ADMIN}).status_code == 303
        for method, path in (("PUT", "/dashboard"), ("GET", "/dashboard/nothing")):
            resp = client.request(method, path)
            assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "dashboard sign-in refused" in logged and "dashboard sign-in: admin" in logged
    assert wrong not in logged
    assert_no_secret(logged)


def test_an_admin_session_sees_the_keys_and_the_buttons(make_proxy: ProxyFactory) -> None:
    proxy = make_proxy(**secured())
    with proxy.client() as caller:
        assert (
            caller.get("/v1/models", headers={"authorization": f"Bearer {WEB}"}).status_code == 200
        )
    with signed_in(proxy, ADMIN) as client:
        cookie = client.cookies["poolswitch_session"]
        assert all(secret not in cookie for secret in SECRETS)
        page = client.get("/dashboard")
        assert page.status_code == 200
        for key_id in "abc":
            assert f'data-key="{key_id}"' in page.text
        assert 'data-action="disable"' in page.text and 'data-seconds="600"' in page.text
        assert 'data-caller="web"' in page.text and "1 / 600" in page.text
        assert_no_secret(page.text)
        state = client.get("/dashboard/state")
        assert state.status_code == 200 and state.headers["cache-control"] == "no-store"
        doc = state.json()
        assert doc["dashboard"]["role"] == "admin"
        assert set(doc["dashboard"]["recent"]["default"]) == {"a", "b", "c"}
        assert sum(len(r) for r in doc["dashboard"]["recent"]["default"].values()) == 1
        assert_no_secret(state.text)
        assert (
            client.post("/dashboard/logout")
            .headers["set-cookie"]
            .startswith("poolswitch_session=; Max-Age=0")
        )


def test_the_admin_api_takes_the_cookie_only_with_the_csrf_header(
    make_proxy: ProxyFactory,
) -> None:
    proxy = make_proxy(**secured())
    url = "/poolswitch/admin/pools/default/keys/b/disable"
    with signed_in(proxy, ADMIN) as client:
        refused = client.post(url)
        assert refused.status_code == 401
        cross_site = client.post(
            url, headers={"x-poolswitch-csrf": "1", "origin": "https://evil.example"}
        )
        assert cross_site.status_code == 403
        done = client.post(url, headers={"x-poolswitch-csrf": "1", "origin": proxy.url})
        assert done.status_code == 200 and done.json()["state"] == "disabled"
    with proxy.client() as other:  # the same origin is not enough without a session
        resp = other.post(url, headers={"x-poolswitch-csrf": "1", "origin": proxy.url})
        assert resp.status_code == 401


def test_a_caller_session_is_read_only(make_proxy: ProxyFactory) -> None:
    proxy = make_proxy(**secured())
    with signed_in(proxy, BATCH) as client:
        page = client.get("/dashboard")
        assert page.status_code == 200 and "caller batch, read-only" in page.text
        assert 'data-action="' not in page.text
        assert client.get("/dashboard/state").json()["dashboard"]["role"] == "caller"
        resp = client.post(
            "/poolswitch/admin/pools/default/keys/b/disable",
            headers={"x-poolswitch-csrf": "1", "origin": proxy.url},
        )
        assert resp.status_code == 401
        assert_no_secret(page.text)
    with proxy.client(headers={"authorization": f"Bearer {WEB}"}) as curl:
        assert curl.get("/dashboard/state").json()["dashboard"]["who"] == "web"


def test_without_tokens_the_page_is_open_and_read_only(make_proxy: ProxyFactory) -> None:
    proxy = make_proxy(dashboard=True)
    with proxy.client() as client:
        page = client.get("/dashboard")
        assert page.status_code == 200 and "open, read-only" in page.text
        assert 'data-action="' not in page.text and "sign out" not in page.text
        assert client.get("/dashboard/state").json()["dashboard"]["role"] == "open"
        assert client.post("/dashboard/login", data={"token": "x"}).status_code == 303


def test_other_origins_are_refused(make_proxy: ProxyFactory) -> None:
    proxy = make_proxy(**secured())
    with proxy.client() as client:
        resp = client.post(
            "/dashboard/login", data={"token": ADMIN}, headers={"origin": "http://evil.example"}
        )
        assert resp.status_code == 403 and "set-cookie" not in resp.headers
        rebinding = client.get(
            "/dashboard", headers={"host": "evil.example", "origin": "http://evil.example"}
        )
        assert rebinding.status_code == 400


# ---- in a real browser ----


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={WIDTH},{HEIGHT}",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def cells(driver: WebDriver, key_id: str) -> list[str]:
    """The texts of a key's row, read in one go (the page swaps rows as they change)."""
    texts = driver.execute_script(
        "const row = document.querySelector('tr[data-key=\"' + arguments[0] + '\"]');"
        "return row === null ? [] : Array.from(row.cells, (td) => td.innerText.trim());",
        key_id,
    )
    assert isinstance(texts, list)
    return [str(text) for text in texts]


def page_keys(driver: WebDriver) -> dict[str, tuple[str, int, int, int]]:
    """Key id -> (state, requests, successes, errors) as the page shows them."""
    shown = {}
    for key_id in "abc":
        row = cells(driver, key_id)
        shown[key_id] = (row[1].replace(" ", "_"), int(row[5]), int(row[6]), int(row[7]))
    return shown


def status_keys(doc: dict[str, Any]) -> dict[str, tuple[str, int, int, int]]:
    return {
        k["id"]: (k["state"], k["total_requests"], k["successes"], k["errors"]) for k in doc["keys"]
    }


def until(driver: WebDriver, check: Any, message: str) -> Any:
    """`check(driver)` until truthy, re-read when the page swapped the element under it."""
    wait = WebDriverWait(
        driver, WAIT, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]
    )
    return wait.until(check, message)


def test_the_page_in_a_browser(browser: WebDriver, tmp_path: Path) -> None:
    with FakeUpstream(KEYS) as fake:
        fake.script("a", {"kind": "rate_limit", "headers": {"retry-after": "300"}})
        fake.script("b", {"kind": "ok"}, {"kind": "ok"}, {"kind": "server_error"}, {"kind": "ok"})
        proxy = RunningProxy(make_config(fake.url, **secured())).start()
        try:
            run_browser(browser, proxy, tmp_path)
        finally:
            proxy.stop()


def run_browser(driver: WebDriver, proxy: RunningProxy, tmp_path: Path) -> None:
    with proxy.client(headers={"authorization": f"Bearer {WEB}"}) as caller:
        for _ in range(6):  # a: 429, parked for 300 s; then b and c take turns
            caller.get("/v1/models")
        doc = caller.get("/status").json()
    parked = {k["id"]: k for k in doc["keys"]}["a"]
    assert parked["state"] == "cooling_down"

    driver.execute_cdp_cmd(  # the viewport, so the screenshot's size is known
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
    )
    driver.get(proxy.url + "/dashboard")
    driver.find_element(By.ID, "token").send_keys(ADMIN)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-key]"), "no key rows")
    until(driver, lambda d: "updated" in d.find_element(By.ID, "updated").text, "no refresh")

    with proxy.client(headers={"authorization": f"Bearer {WEB}"}) as caller:
        doc = caller.get("/status").json()
    expected = status_keys(doc)
    until(driver, lambda d: page_keys(d) == expected, f"page != /status {expected}")
    use = driver.find_element(By.CSS_SELECTOR, 'tr[data-caller="web"] td.rpm').text
    web = {c["id"]: c for c in doc["callers"]}["web"]
    assert use.endswith(f"{web['requests_last_minute']} / {web['rpm']}")
    assert web["requests_last_minute"] == 6

    countdown = cells(driver, "a")[3]
    found = re.fullmatch(r"(\d+) min (\d\d) s", countdown)
    assert found is not None, countdown
    left = int(found.group(1)) * 60 + int(found.group(2))
    assert abs(left - (parked["cooldown_until"] - time.time())) < 5
    assert cells(driver, "a")[4] == "retry-after"

    def click_disable(d: WebDriver) -> bool:
        selector = 'tr[data-key="c"] button[data-action="disable"]:not([data-seconds])'
        d.find_element(By.CSS_SELECTOR, selector).click()
        return True

    until(driver, click_disable, "no disable button")
    until(driver, lambda d: cells(d, "c")[1] == "disabled", "the page never showed c disabled")
    with proxy.client(headers={"authorization": f"Bearer {WEB}"}) as caller:
        after = {k["id"]: k for k in caller.get("/status").json()["keys"]}
    assert after["c"]["state"] == "disabled" and after["c"]["reason"] == "disabled_by_operator"
    until(
        driver, lambda d: "disable c: disabled" in d.find_element(By.ID, "notice").text, "no notice"
    )
    assert_no_secret(driver.page_source)

    shot = tmp_path / "dashboard.png"
    assert driver.save_screenshot(str(shot))
    width, height, colours = png_facts(shot.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    assert colours > 20, "the screenshot looks blank"
    keep = os.environ.get("POOLSWITCH_DASHBOARD_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)


def png_facts(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct colours) of an 8-bit RGB or RGBA PNG, decoded with zlib."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    pos, idat, header = 8, bytearray(), b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
        pos += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in (2, 6) and interlace == 0
    bpp = 3 if colour_type == 2 else 4
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    assert len(raw) == height * (stride + 1)
    previous = bytearray(stride)
    colours: set[bytes] = set()
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        unfilter(kind, line, previous, bpp)
        if y % 4 == 0:  # every 4th line is plenty to tell a page from a blank
            colours.update(bytes(line[x : x + 3]) for x in range(0, stride, bpp * 2))
        previous = line
    return width, height, len(colours)


def unfilter(kind: int, line: bytearray, up: bytearray, bpp: int) -> None:
    for x in range(len(line)):
        a = line[x - bpp] if x >= bpp else 0
        b = up[x]
        if kind == 1:
            line[x] = (line[x] + a) & 0xFF
        elif kind == 2:
            line[x] = (line[x] + b) & 0xFF
        elif kind == 3:
            line[x] = (line[x] + (a + b) // 2) & 0xFF
        elif kind == 4:
            c = up[x - bpp] if x >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF


def test_png_facts_reads_a_tiny_png() -> None:
    rows = b"".join(b"\x00" + bytes([x * 40, 0, 255 - x * 40]) * 1 for x in range(2))
    ihdr = struct.pack(">IIBBBBB", 1, 2, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
    png += chunk(b"IEND", b"") + b"\x00" * 1000
    assert png_facts(png)[:2] == (1, 2)
