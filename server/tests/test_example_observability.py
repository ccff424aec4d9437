"""examples/observability/: the alert rules and their unit tests through promtool, the Prometheus
config, and the Grafana dashboard — its shape, every PromQL expression parsed offline by promtool,
and every metric name it or the rules use exported by a real proxy's /metrics (needs promtool,
the Debian package prometheus; fails without it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from poolswitch_testing.fake_upstream import FakeUpstream

from conftest import VALUES, ProxyFactory

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "examples" / "observability"
APP = "tok-app-0123456789abcdef"
METRICS = "tok-metrics-0123456789abcdef"

# What an annotation may name: ids and places, never a value.
SAFE_LABELS = {"pool", "key_id", "caller", "reason", "code", "backend", "result", "instance", "job"}
# Grafana's variables, replaced by a value of the same kind so that promtool parses the query.
GRAFANA_VARIABLES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "instance": ".*",
    "pool": ".*",
}
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
METRIC_NAME = re.compile(r"(?<![\w:])poolswitch_[a-z_]+(?![\w:])")
LABEL_VALUES = re.compile(r"^label_values\((?P<expr>.+),\s*\w+\)$")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool") or shutil.which("promtool", path="/usr/sbin:/usr/bin")
    if tool is None:
        pytest.fail(
            "promtool is missing: install the Debian package prometheus (nox -s tests does)",
            pytrace=False,
        )
    return subprocess.run(
        [tool, *args], cwd=KIT, capture_output=True, text=True, timeout=60, check=False
    )


def assert_ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stdout + done.stderr


def load_yaml(name: str) -> Any:
    return yaml.safe_load((KIT / name).read_text())


def dashboard() -> Any:
    return json.loads((KIT / "grafana-dashboard.json").read_text())


def panels(doc: Any) -> Iterator[Any]:
    for panel in doc["panels"]:
        yield panel
        yield from panel.get("panels", [])  # the panels of a collapsed row


def dashboard_queries(doc: Any) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and the variables' selectors."""
    queries = [t["expr"] for p in panels(doc) for t in p.get("targets", [])]
    for variable in doc["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            found = LABEL_VALUES.match(query["query"] if isinstance(query, dict) else query)
            assert found, variable
            queries.append(found["expr"])
    return queries


def rules() -> list[Any]:
    return [rule for group in load_yaml("alerts.yml")["groups"] for rule in group["rules"]]


def alerts() -> list[Any]:
    return [rule for rule in rules() if "alert" in rule]


def substituted(expr: str) -> str:
    def value(found: re.Match[str]) -> str:
        name = found[1] or found[2]
        assert name in GRAFANA_VARIABLES, f"unknown Grafana variable ${name} in {expr}"
        return GRAFANA_VARIABLES[name]

    return VARIABLE.sub(value, expr)


def test_promtool_checks_the_rules() -> None:
    assert_ok(promtool("check", "rules", "alerts.yml"))


def test_promtool_runs_the_alerts_unit_tests() -> None:
    done = promtool("test", "rules", "alerts_test.yml")
    assert_ok(done)
    assert "SUCCESS" in done.stdout


def test_promtool_checks_the_prometheus_config() -> None:
    assert_ok(promtool("check", "config", "prometheus.yml"))
    config = load_yaml("prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "poolswitch"  # what PoolSwitchDown watches
    assert 'job="poolswitch"' in next(a["expr"] for a in alerts() if a["alert"] == "PoolSwitchDown")
    assert "credentials_file" in (KIT / "prometheus.yml").read_text()  # the metrics_token hint


def test_every_alert_has_a_for_a_severity_and_safe_annotations() -> None:
    for alert in alerts():
        name = alert["alert"]
        assert re.fullmatch(r"\d+[smh]", alert["for"]), name
        assert alert["labels"]["severity"] in {"critical", "warning"}, name
        annotations = alert["annotations"]
        assert set(annotations) == {"summary", "description"}, name
        named = set(re.findall(r"\$labels\.(\w+)", " ".join(annotations.values())))
        assert named <= SAFE_LABELS, (name, named - SAFE_LABELS)
        assert f"### {name}" in (KIT / "README.md").read_text(), f"{name}: no runbook in README"


def test_every_alert_is_tested_firing_and_quiet() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml("alerts_test.yml")["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {alert["alert"] for alert in alerts()}
    assert fired == names and quiet == names


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    doc = dashboard()
    assert doc["schemaVersion"] >= 39 and doc["uid"] and doc["title"]
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert (variables["DS_PROMETHEUS"]["type"], variables["DS_PROMETHEUS"]["query"]) == (
        "datasource",
        "prometheus",
    )
    pool = variables["pool"]
    assert pool["type"] == "query" and pool["query"]["query"].startswith("label_values(")
    assert pool["query"]["query"].endswith(", pool)") and pool["includeAll"]
    source = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    ids: list[int] = []
    boxes: list[tuple[int, int, int, int, str]] = []
    for panel in panels(doc):
        ids.append(panel["id"])
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        boxes.append((pos["x"], pos["y"], pos["w"], pos["h"], panel["title"]))
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == source and panel["title"] and panel["description"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs), panel["title"]
        assert all(t["datasource"] == source for t in panel["targets"]), panel["title"]
    assert len(set(ids)) == len(ids)
    for n, (x, y, w, h, title) in enumerate(boxes):
        for x2, y2, w2, h2, other in boxes[n + 1 :]:
            apart = x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y
            assert apart, f"panels {title!r} and {other!r} overlap"


def test_promtool_parses_every_dashboard_expression(tmp_path: Path) -> None:
    """promtool has no offline query parser, but it parses a recording rule's expression."""
    queries = [substituted(expr) for expr in dashboard_queries(dashboard())]
    assert all("$" not in q for q in queries)
    recorded = [{"record": f"dashboard:query_{n}", "expr": q} for n, q in enumerate(queries)]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recorded}]}))
    assert_ok(promtool("check", "rules", str(path)))


def test_every_metric_the_kit_uses_is_exported(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "rate_limit", "headers": {"retry-after": "30"}})
    proxy = make_proxy(
        "ab",
        callers=[{"id": "app", "token": APP, "rpm": 2}],
        metrics_token=METRICS,
    )
    with proxy.client(headers={"authorization": f"Bearer {APP}"}) as client:
        answers = [client.post("/v1/chat/completions", json={}).status_code for _ in range(3)]
        assert answers == [200, 200, 429]  # a failover from a to b, then the caller's rpm
        assert client.get("/metrics").status_code == 401  # a caller token does not read it
        scrape = client.get("/metrics", headers={"authorization": f"Bearer {METRICS}"})
    assert scrape.status_code == 200
    text = scrape.text
    for secret in (*VALUES.values(), APP, METRICS):
        assert secret not in text
    families = list(text_string_to_metric_families(text))
    exported = {s.name for f in families for s in f.samples if s.name.startswith("poolswitch_")}

    used_by_rules = {n for rule in rules() for n in METRIC_NAME.findall(rule["expr"])}
    used_by_dashboard = {n for q in dashboard_queries(dashboard()) for n in METRIC_NAME.findall(q)}
    used = used_by_rules | used_by_dashboard
    missing = used - exported
    assert not missing, f"the kit uses metrics /metrics does not export: {sorted(missing)}"
    # and the dashboard shows every metric the proxy exports (`_created`: the counters' start times)
    unseen = {
        f.name
        for f in families
        if f.name.startswith("poolswitch_")
        and not f.name.endswith("_created")
        and not any(s.name in used_by_dashboard for s in f.samples)
    }
    assert not unseen, f"metrics not on the dashboard: {sorted(unseen)}"
