"""An https upstream on loopback with a certificate made for the run (trustme): the proxy
trusts it through `upstream_ca_file`; without it the request fails as any unreachable upstream
does (502 `upstream_unreachable`, the proxy's envelope, no traceback); a reload with a renewed
CA at the same path opens a new upstream client."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from prometheus_client import CollectorRegistry

from poolswitch.app import PoolSwitchApp
from poolswitch_testing.fake_upstream import FakeUpstream

from conftest import KEYS, RunningProxy, make_config


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_upstream(ca: trustme.CA) -> Iterator[FakeUpstream]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    with FakeUpstream(KEYS, ssl_context=context) as fake:
        yield fake


def test_the_proxy_trusts_the_upstream_through_upstream_ca_file(
    ca: trustme.CA, tls_upstream: FakeUpstream, tmp_path: Path
) -> None:
    assert tls_upstream.url.startswith("https://127.0.0.1:")
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    proxy = RunningProxy(make_config(tls_upstream.url, "ab", upstream_ca_file=str(bundle)))
    proxy.start()
    try:
        with proxy.client() as client:
            for _ in range(3):
                resp = client.post("/v1/chat/completions", json={"model": "m", "messages": []})
                assert resp.status_code == 200, resp.text
                assert resp.json()["object"] == "chat.completion"
    finally:
        proxy.stop()
    assert tls_upstream.key_ids() == ["a", "b", "a"]


def test_without_the_ca_the_upstream_is_unreachable_with_the_proxy_envelope(
    tls_upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = RunningProxy(make_config(tls_upstream.url, "ab", retry_attempts=2)).start()
    try:
        with proxy.client() as client:
            resp = client.get("/v1/models")
    finally:
        proxy.stop()
    assert resp.status_code == 502
    assert resp.headers["x-poolswitch-error"] == "upstream_unreachable"
    assert resp.headers["x-poolswitch-attempts"] == "2"
    error = resp.json()["error"]
    assert error["code"] == "upstream_unreachable"
    assert "Traceback" not in resp.text and "Traceback" not in caplog.text
    assert tls_upstream.key_ids() == []  # the handshake failed: no request reached it


def test_a_reload_with_a_renewed_ca_opens_a_new_upstream_client(
    ca: trustme.CA, tls_upstream: FakeUpstream, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    other = trustme.CA()  # the bundle first trusts another CA: the upstream is not trusted
    other.cert_pem.write_to_path(str(bundle))

    async def scenario() -> None:
        config = make_config(tls_upstream.url, "ab", upstream_ca_file=str(bundle))
        app = PoolSwitchApp(config, registry=CollectorRegistry())
        async with app.lifespan(app.builtins):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
                assert (await c.get("/v1/models")).status_code == 502
                first = app.forwarders["default"]
                assert (await app.reload(config)).ok  # same path, same bytes: same client
                assert app.forwarders["default"] is first
                ca.cert_pem.write_to_path(str(bundle))  # renewed under the same path
                assert (await app.reload(config)).ok
                assert app.forwarders["default"] is not first
                assert (await c.get("/v1/models")).status_code == 200
                bundle.write_text("not a bundle")  # broken after validation: refused
                result = await app.reload(config)
                assert not result.ok
                assert result.problems == [
                    "upstream_ca_file (pool default): cannot load (not a PEM file of CA "
                    "certificates (no BEGIN CERTIFICATE block))"
                ]
                assert (await c.get("/v1/models")).status_code == 200  # the old one serves

    asyncio.run(scenario())
