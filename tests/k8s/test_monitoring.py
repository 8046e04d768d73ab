"""The observability pack (k8s/components/monitoring): alert rules, their unit tests, the dashboard.

- `promtool check rules` and `promtool test rules` (Debian's prometheus package; `make test`
  installs it as root) on the PrometheusRule's groups and tests/k8s/fixtures/monitoring/rules-test.yaml;
- every alert has a severity, a summary and a runbook link to a section of docs/runbook.md, and the
  runbook has a section for every alert;
- the Grafana dashboard is valid JSON with the panels ops asked for, and every query (and every
  rule) names only metrics the services export: discovered from the services' real Prometheus
  registry after importing the module each `raceday serve <service>` runs, not from a list here;
- the ConfigMap the component renders carries the dashboard file unchanged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import yaml

from services.common.service_apps import service_module
from services.common.settings import SERVICE_NAMES
from tests.k8s.test_manifests import FIXTURES, K8S, ROOT, named, render, requires_kubectl

MONITORING = K8S / "components" / "monitoring"
RULES = MONITORING / "prometheusrule.yaml"
DASHBOARD = MONITORING / "dashboards" / "raceday.json"
RULES_TEST = FIXTURES / "monitoring" / "rules-test.yaml"
RUNBOOK = ROOT / "docs" / "runbook.md"
# Metrics Prometheus itself adds to every scrape target, which rules may use.
SCRAPE_METRICS = {"up"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
    "offset", "inf", "nan",
}  # fmt: skip


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("promtool must run in CI (apt-get install prometheus)")
        pytest.skip("promtool is not installed (apt-get install prometheus; `make test` installs it as root)")
    return found


def rule_groups() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(RULES.read_text())["spec"]
    return spec


def alerts() -> list[dict[str, Any]]:
    return [rule for group in rule_groups()["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every query of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def exported_metric_names() -> set[str]:
    """Every sample name the four services can export, from the real registry.

    Importing the module `raceday serve <service>` builds registers that service's metrics (they are
    module-level collectors); a labelled metric has no samples until first used, so names come from
    each family's name and type, as the exposition format writes them.
    """
    for service in SERVICE_NAMES:
        service_module(service)
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in prometheus_client.REGISTRY.collect():
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    return names


def metric_names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label matchers, ranges and groupings removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", text):
        if match.group(2) is None and match.group(1).lower() not in PROMQL_WORDS:
            names.add(match.group(1))
    return names


def github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_anchors() -> set[str]:
    return {
        github_anchor(line.lstrip("#")) for line in RUNBOOK.read_text().splitlines() if line.startswith("#")
    }


# ---------------------------------------------------------------------------------------------
# Rules


def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    binary = promtool()
    rules = tmp_path / "raceday.rules.yaml"
    rules.write_text(yaml.safe_dump(rule_groups()))
    proc = subprocess.run([binary, "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in proc.stdout


def test_promtool_unit_tests_of_the_rules(tmp_path: Path) -> None:
    binary = promtool()
    (tmp_path / "raceday.rules.yaml").write_text(yaml.safe_dump(rule_groups()))
    shutil.copy(RULES_TEST, tmp_path / "rules-test.yaml")
    proc = subprocess.run(
        [binary, "test", "rules", "rules-test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_has_severity_summary_and_a_runbook_section() -> None:
    anchors = runbook_anchors()
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in alerts():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path.endswith("/docs/runbook.md"), url
        assert anchor == github_anchor(rule["alert"]) and anchor in anchors, f"{url}: no such runbook section"


def test_every_alert_is_unit_tested() -> None:
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULES_TEST.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    critical = {rule["alert"] for rule in alerts() if rule["labels"]["severity"] == "critical"}
    assert critical - tested == set(), f"critical alerts without a firing unit test: {critical - tested}"


def test_rules_name_only_exported_metrics() -> None:
    exported = exported_metric_names() | SCRAPE_METRICS
    for rule in alerts():
        names = metric_names_in(rule["expr"])
        assert names, f"{rule['alert']}: no metric in {rule['expr']!r}"
        assert names <= exported, f"{rule['alert']}: not exported: {sorted(names - exported)}"


# ---------------------------------------------------------------------------------------------
# Dashboard


def test_dashboard_is_valid_and_has_the_panels_ops_need() -> None:
    document = dashboard()
    assert document["uid"] and document["title"] and document["schemaVersion"] >= 30
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in document["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], f"{panel['title']}: no query"
            assert all(t["expr"].strip() and t["refId"] for t in panel["targets"]), panel["title"]
    queries = " ".join(expr for _, expr in dashboard_queries())
    # What the issue asks the dashboard to show, by the metric that shows it.
    for needed in (
        "raceday_poll_stage_seconds_bucket",  # poll latency by stage
        "raceday_missed_polls_total",  # missed polls
        "raceday_tab_circuit_open",  # breaker state
        "raceday_commit_circuit_open",
        "raceday_data_age_seconds",  # data age
        "raceday_write_seconds_bucket",  # write p99
        "raceday_gateway_http_request_seconds_bucket",  # REST p99
        "raceday_gateway_http_request_seconds_count",  # REST errors
    ):
        assert needed in queries, f"the dashboard shows nothing from {needed}"


def test_dashboard_queries_name_only_exported_metrics() -> None:
    exported = exported_metric_names()
    for title, expr in dashboard_queries():
        names = metric_names_in(expr)
        assert names, f"{title}: no metric in {expr!r}"
        assert names <= exported, f"{title}: not exported by any service: {sorted(names - exported)}"


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, stage) (rate(raceday_poll_stage_seconds_bucket{stage="x"}'
        "[$__rate_interval]))) / on (pod) group_left up > 0.5 and time() - raceday_a offset 5m"
    )
    assert metric_names_in(expr) == {"raceday_poll_stage_seconds_bucket", "up", "raceday_a"}


@requires_kubectl
def test_the_component_carries_the_dashboard_unchanged() -> None:
    objs = render("overlay-prod")
    config_map = named(objs, "ConfigMap", "raceday-grafana-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["raceday.json"]) == dashboard()
    rule = named(objs, "PrometheusRule", "raceday")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"] == rule_groups()
