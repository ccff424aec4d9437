"""Run one case: fake upstream, real proxy, the steps through the client, the verdict.

Per case: key values are made up (`sk-conf-<id>-<random>`), the fake upstream starts in a thread
with the case's scripts, `poolswitch start` starts with the case's settings (one pool per case
pool, each at its own base path of the fake), then each step runs in order; a `background` call
is sent by the runner itself (plain HTTP, in a thread) and not checked, so that the next steps
meet a request in flight. Every call's result is checked against its expectations and for key
values (the secret invariant); the upstream's record against the case's `expect_upstream`; the
proxy's log for key values; and the proxy must exit 0 when stopped. A harness error or a dead
proxy ends the case.

A case with `replicas: N` runs N proxies with the same settings on one Redis namespace (the run's
redis-server, a namespace of its own), all in front of the one fake upstream; a step's `replica`
picks the proxy it talks to, restarts or kills (SIGKILL, then started again). An endpoint step
with `eventually: S` is called again every EVENTUALLY_INTERVAL until its expectations hold, for
at most S seconds (what another replica learned arrives within about 100 ms, counters within
about 3 s); the last call's differences are the step's.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import json as jsonlib
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from poolswitch_testing.conformance import leaks
from poolswitch_testing.conformance.client import ClientProcess, HarnessError
from poolswitch_testing.conformance.compare import (
    attempt_view,
    check_result,
    check_upstream,
    normalise,
)
from poolswitch_testing.conformance.schema import Call, Case, Step, substitute
from poolswitch_testing.conformance.settings import embedded_settings, proxy_settings
from poolswitch_testing.fake_upstream import FakeUpstream, blob_bytes
from poolswitch_testing.proxy import ProxyProcess, ProxyStartError

__all__ = ["CaseResult", "Environment", "run_case"]

HARNESS_SLACK = 15.0  # how much longer than a call's own timeout the client may take
BACKGROUND_TIMEOUT = 30.0
EVENTUALLY_INTERVAL = 0.1


@dataclass(frozen=True)
class Environment:
    python: str  # the interpreter that runs `-m poolswitch start`
    workdir: Path  # a fresh directory for this run
    server_src: Path | None = None  # another server's src/ to run instead
    redis_url: str | None = None  # the run's redis-server, for cases with storage: redis
    embedded: bool = False  # the client holds the pool itself (no proxy is started)


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    reasons: tuple[str, ...]
    seconds: float
    secrets: Mapping[str, str]  # to redact from anything printed about this case
    log_tail: str = ""  # the proxy's log when it died or failed to start

    @property
    def passed(self) -> bool:
        return not self.reasons


class _Failed(Exception):
    """Ends a case early (harness error, dead proxy)."""


class _CaseRun:
    def __init__(self, case: Case, client: ClientProcess, env: Environment, directory: Path):
        self.case = case
        self.client = client
        self.env = env
        self.directory = directory
        self.values = {
            k.id: f"sk-conf-{k.id.replace(':', '-')}-{secrets.token_hex(12)}" for k in case.keys
        }
        self.secrets = dict(self.values)
        for name in ("admin_token", "metrics_token"):
            token = case.config.get(name)
            if isinstance(token, str):
                self.secrets[name] = token
        callers = case.config.get("callers")
        # caller tokens: secret like the keys, and never seen by the upstream either
        self.caller_tokens = {
            f"callers.{c['id']}.token": c["token"]
            for c in (callers if isinstance(callers, list) else [])
            if isinstance(c, dict) and isinstance(c.get("token"), str)
        }
        self.secrets.update(self.caller_tokens)
        self.reasons: list[str] = []
        self.log_tail = ""
        self._dead = socket.socket()  # bound, never listening: connections are refused
        self._dead.bind(("127.0.0.1", 0))
        self.dead_url = f"http://127.0.0.1:{self._dead.getsockname()[1]}"
        self.table = {f"key:{i}": v for i, v in self.values.items()} | {"dead_url": self.dead_url}
        self.fake: FakeUpstream | None = None
        self.proxies: list[ProxyProcess] = []
        self.background: list[threading.Thread] = []
        self.embedded: dict[str, Any] | None = None  # the pool the embedded client builds

    def run(self) -> None:
        try:
            self._start()
            for number, step in enumerate(self.case.steps, start=1):
                self._step(number, step)
            assert self.fake is not None
            attempts = [attempt_view(a) for a in list(self.fake.attempts)]
            self.reasons += check_upstream(self.case.expect_upstream, attempts)
            for name in leaks.in_text(json.dumps(attempts), self.caller_tokens):
                self.reasons.append(f"the upstream saw {name}")
        except _Failed:
            pass
        finally:
            self._stop()

    def _start(self) -> None:
        overrides = substitute(dict(self.case.config), self.table)
        scheme = overrides.get("auth_scheme", "Bearer")
        self.fake = FakeUpstream(
            {value: key_id for key_id, value in self.values.items()},
            auth_header=str(overrides.get("auth_header_name", "authorization")).lower(),
            auth_scheme=None if scheme is None else str(scheme),
            auth_query_param=overrides.get("auth_query_param"),
        ).start_in_thread()
        self.table["upstream"] = self.fake.url
        overrides = substitute(dict(self.case.config), self.table)
        self._script(self.case.upstream)
        pools = None
        if self.case.pools:
            pools = [
                {
                    "name": pool.name,
                    "route": pool.route,
                    "keys": [(k.proxy_id, k.weight) for k in pool.keys],
                    "settings": substitute(dict(pool.settings), self.table),
                }
                for pool in self.case.pools
            ]
        redis = None
        if self.case.uses_redis:
            if self.env.redis_url is None:
                self.reasons.append("start: storage redis, but the runner has no redis-server")
                raise _Failed
            redis = (self.env.redis_url, f"conformance-{secrets.token_hex(8)}")
        settings = proxy_settings(
            overrides,
            [(k.id, k.weight) for k in self.case.keys],
            self.values,
            self.fake.url,
            self.directory,
            pools,
            redis,
        )
        if self.env.embedded:
            storage = settings.get("storage", {}).get("backend", "memory")
            if self.case.pools or self.case.replicas > 1 or storage != "memory":
                self.reasons.append("start: pools, replicas or a store need the proxy; tag `proxy`")
                raise _Failed
            self.embedded = {
                "id": f"{self.case.id}#{secrets.token_hex(4)}",
                "settings": embedded_settings(settings),
            }
            return
        for i in range(self.case.replicas):
            directory = self.directory if self.case.replicas == 1 else self.directory / f"r{i}"
            self.proxies.append(
                ProxyProcess(self.env.python, directory, settings, server_src=self.env.server_src)
            )
        for i in range(self.case.replicas):
            self._start_proxy(i, "start")

    def _name(self, replica: int) -> str:
        return "the proxy" if self.case.replicas == 1 else f"replica {replica}"

    def _start_proxy(self, replica: int, what: str) -> None:
        proxy = self.proxies[replica]
        try:
            proxy.start()
        except ProxyStartError as exc:
            on = "" if self.case.replicas == 1 else f" (replica {replica})"
            self.reasons.append(f"{what}{on}: {exc} (exit code {proxy.exit_code})")
            self.log_tail = proxy.tail()
            raise _Failed from None

    def _stop(self) -> None:
        for thread in self.background:
            thread.join(BACKGROUND_TIMEOUT + HARNESS_SLACK)
        for i, proxy in enumerate(self.proxies):
            running = proxy.alive()
            proxy.stop()
            if running and proxy.exit_code != 0:
                self.reasons.append(f"{self._name(i)} exited with {proxy.exit_code} on SIGTERM")
            leaked = leaks.in_text(proxy.log(), self.secrets)
            if leaked:
                self.reasons.append(
                    f"{self._name(i)}'s log contains the value of {', '.join(leaked)}"
                )
        if self.fake is not None:
            self.fake.stop_thread()
        self._dead.close()

    def _script(self, scripts: Mapping[str, Any]) -> None:
        assert self.fake is not None
        for key_id, behaviours in scripts.items():
            self.fake.script(key_id, *substitute(list(behaviours), self.table))

    def _step(self, number: int, step: Step) -> None:
        label = f"step {number} ({step.label()})"
        if self.env.embedded and _needs_proxy(step):
            self.reasons.append(f"{label}: needs the proxy; tag the case `proxy`")
            raise _Failed
        if step.action == "wait":
            time.sleep(step.seconds)
        elif step.action == "script":
            self._script(step.scripts)
        elif step.action == "background":
            assert step.call is not None
            request = self._request("", step.call, step.replica)
            url = self.proxies[step.replica].url
            thread = threading.Thread(target=_send, args=(url, request), daemon=True)
            thread.start()
            self.background.append(thread)
        elif step.action == "restart":
            proxy = self.proxies[step.replica]
            proxy.stop()
            if proxy.exit_code != 0:
                self.reasons.append(
                    f"{label}: {self._name(step.replica)} exited with {proxy.exit_code}"
                )
            self._start_proxy(step.replica, label)
        elif step.action == "kill":
            self.proxies[step.replica].kill()
            self._start_proxy(step.replica, label)
        else:
            for turn in range(step.repeat):
                where = label if step.repeat == 1 else f"{label} #{turn + 1}"
                self._call(where, f"{self.case.id}#{number}.{turn + 1}", step)

    def _call(self, where: str, request_id: str, step: Step) -> None:
        """One call and its checks; with `eventually`, again until they hold or time is up."""
        deadline = time.monotonic() + (step.eventually or 0.0)
        reasons = self._try_call(where, request_id, step)
        tries = 1
        while reasons and time.monotonic() + EVENTUALLY_INTERVAL <= deadline:
            time.sleep(EVENTUALLY_INTERVAL)
            tries += 1
            reasons = self._try_call(where, f"{request_id}.{tries}", step)
        if reasons and step.eventually is not None:
            reasons = [f"{r} (still, after {step.eventually:g}s)" for r in reasons]
        self.reasons += [f"{where}: {reason}" for reason in reasons]

    def _try_call(self, where: str, request_id: str, step: Step) -> list[str]:
        """The differences from the step's expectations; a leak is reported at once."""
        assert self.fake is not None and step.call is not None
        proxy = self.proxies[step.replica] if self.proxies else None
        before = len(self.fake.attempts)
        request = self._request(request_id, step.call, step.replica)
        try:
            bound = max(step.call.timeout, float(request.get("client", {}).get("timeout", 0)))
            begun = time.monotonic()
            line, result = self.client.call(request, bound + HARNESS_SLACK)
            seconds = time.monotonic() - begun
        except HarnessError as exc:
            self.reasons.append(f"{where}: harness error: {exc}")
            raise _Failed from None
        attempts = [attempt_view(a) for a in list(self.fake.attempts)[before:]]
        leaked = leaks.in_result(line, result, self.secrets)
        result = normalise(result)
        if leaked:
            self.reasons.append(f"{where}: the answer contains the value of {', '.join(leaked)}")
        expect = step.expect
        filled = {f.name: substitute(getattr(expect, f.name), self.table) for f in fields(expect)}
        expect = dataclasses.replace(expect, **filled)
        reasons = check_result(expect, result, attempts, now=time.time(), seconds=seconds)
        if proxy is not None and not proxy.alive():
            self.reasons += [f"{where}: {reason}" for reason in reasons]
            name = self._name(step.replica)
            self.reasons.append(f"{where}: {name} died (exit code {proxy.exit_code})")
            self.log_tail = proxy.tail()
            raise _Failed
        return list(reasons)

    def _request(self, request_id: str, call: Call, replica: int = 0) -> dict[str, Any]:
        if self.embedded is not None:
            url = ""
        else:
            url = self.dead_url if call.dead_proxy else self.proxies[replica].url
        request: dict[str, Any] = {
            "id": request_id,
            "proxy_url": url,
            "call": call.call,
            "stream": call.call == "stream",
            "method": call.method,
            "path": call.path,
            "headers": dict(substitute(dict(call.headers), self.table)),
            "timeout": call.timeout,
        }
        if self.embedded is not None:
            request["embedded"] = self.embedded
        if call.token is not None:
            request["token"] = substitute(call.token, self.table)
        if call.client:
            request["client"] = substitute(dict(call.client), self.table)
        if call.body_kind == "body_blob":
            request["body_b64"] = base64.b64encode(blob_bytes(int(call.body))).decode()
        elif call.body_kind is not None:
            request[call.body_kind] = substitute(call.body, self.table)
        return request


def _needs_proxy(step: Step) -> bool:
    """Steps an embedded client cannot take: there is no proxy to restart, kill, send to by
    hand, scrape, or miss."""
    if step.action in ("restart", "kill", "background", "metrics"):
        return True
    return step.call is not None and (step.call.dead_proxy or step.replica != 0)


def _send(url: str, request: Mapping[str, Any]) -> None:
    """One request straight to the proxy, its answer read and dropped (a `background` step)."""
    headers = dict(request["headers"])
    client = request.get("client", {})
    if request.get("token") or client.get("token"):
        headers["x-poolswitch-token"] = client.get("token") or request["token"]
    if client.get("pool"):
        headers["x-poolswitch-pool"] = client["pool"]
    body = None
    if "json" in request:
        body = jsonlib.dumps(request["json"]).encode()
        headers.setdefault("Content-Type", "application/json")
    elif "text" in request:
        body = request["text"].encode()
    elif "body_b64" in request:
        body = base64.b64decode(request["body_b64"])
    host, _, port = url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=BACKGROUND_TIMEOUT)
    try:
        conn.request(request["method"], request["path"], body=body, headers=headers)
        conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        pass
    finally:
        conn.close()


def run_case(case: Case, client: ClientProcess, env: Environment, number: int) -> CaseResult:
    """Run `case` with `client`; `number` makes its working directory unique in the run."""
    started = time.monotonic()
    directory = env.workdir / f"{number:03d}-{case.file}-{case.name}"
    directory.mkdir(parents=True)
    run = _CaseRun(case, client, env, directory)
    run.run()
    return CaseResult(
        case.id,
        tuple(run.reasons),
        time.monotonic() - started,
        run.secrets,
        run.log_tail,
    )
