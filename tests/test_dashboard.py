"""The Grafana dashboard: Grafana's schema essentials, and only metrics the code exports."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

try:  # a real PromQL parser (Rust, from the test extras); the regex reader is the fallback
    import promql_parser
except ImportError:  # pragma: no cover - only on a checkout without the test extras
    promql_parser = None

from detector.metrics import create_metrics
from detector.stats import RunStats

DASHBOARD = Path(__file__).resolve().parents[1] / "helm/nhi-detector/dashboards/nhi-detector.json"
GRID_WIDTH = 24
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "offset", "bool", "inf", "nan"}
# What the issue asks the dashboard to show, as the metric behind each panel family.
REQUIRED = {
    "throughput": "nhi_events_total",
    "event-time lag": "nhi_event_time_lag_seconds",
    "consumer lag": "nhi_kafka_consumer_lag_messages",
    "processing latency": "nhi_batch_processing_seconds_bucket",
    "alerts": "nhi_alerts_total",
    "dead letters": "nhi_dead_letters_total",
    "identities by kind": "nhi_identities_by_kind",
    "learning state": "nhi_identities_learning",
    "state size": "nhi_state_size_bytes",
    "degradations": "nhi_model_degradations_total",
    "suppressed": "nhi_alerts_suppressed_total",
    "shadow": "nhi_shadow_alerts_total",
}


# Grafana's template variables, given values so the expression is plain PromQL.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$instance": ".*"}


def as_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def parsed_metric_names(expr: str) -> set[str]:
    """Vector selectors' metric names, from the real parser's syntax tree."""
    names: set[str] = set()

    def visit(node) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(as_promql(expr)), visit)
    return names


def metric_names(expr: str) -> set[str]:
    """Metric identifiers referenced by one PromQL expression (functions and keywords out).

    The parser's answer when it is installed, else a regex reading of the expression.
    """
    if promql_parser is not None:
        return parsed_metric_names(expr)
    return regex_metric_names(expr)


def regex_metric_names(expr: str) -> set[str]:
    """Metric identifiers by regex: strings, matchers, ranges and grouping clauses removed."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', " ", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+-?\S+", " ", text)
    text = re.sub(r"(?<![A-Za-z_:])\d+(\.\d+)?([eE][-+]?\d+)?", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[match.end():].lstrip().startswith("("):
            continue  # a function call
        if match.group(0).lower() not in KEYWORDS:
            names.add(match.group(0))
    return names


def exported() -> tuple[set[str], set[str]]:
    """(exact series names, histogram base names) registered by the factory.

    The worker's endpoint adds its own collector to the same registry; it is included.
    """
    from streams.health import WorkerCollector

    registry = CollectorRegistry()
    metrics = create_metrics(registry, RunStats(), process_metrics=True)
    registry.register(WorkerCollector(metrics.prefix, dict))
    exact, histograms = set(), set()
    for family in registry.collect():
        exact.add(family.name + ("_total" if family.type == "counter" else ""))
        if family.type == "histogram":
            histograms.add(family.name)
    return exact, histograms


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def data_panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def all_exprs(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in data_panels(dashboard) for t in p["targets"]]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            assert var["query"] == var["definition"]
            exprs.append(re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", var["definition"]))
    return exprs


class TestPromqlParser:
    def test_metric_names__skips_functions_labels_and_numbers(self) -> None:
        expr = ('histogram_quantile(0.99, sum by (le, job) (rate(a_bucket{x="y(z)"}[5m]))) '
                '/ clamp_min(b_total offset 5m, 1e-9) and on (instance) c')
        assert regex_metric_names(expr) == {"a_bucket", "b_total", "c"}
        if promql_parser is not None:
            assert parsed_metric_names(expr) == {"a_bucket", "b_total", "c"}

    def test_every_expression__parses(self, dashboard: dict) -> None:
        if promql_parser is None:
            pytest.skip("promql-parser (test extras) is not installed")
        for expr in all_exprs(dashboard):
            promql_parser.parse(as_promql(expr))
        with pytest.raises(ValueError, match="unclosed left parenthesis"):
            promql_parser.parse("sum by (le (rate(x[5m]))")

    def test_both_readers__agree_on_the_dashboard(self, dashboard: dict) -> None:
        if promql_parser is None:
            pytest.skip("promql-parser (test extras) is not installed")
        for expr in all_exprs(dashboard):
            assert regex_metric_names(expr) == parsed_metric_names(expr), expr


class TestDashboardSchema:
    def test_top_level_essentials(self, dashboard: dict) -> None:
        assert dashboard["id"] is None
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
        assert dashboard["title"]
        assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
        assert isinstance(dashboard["panels"], list) and len(data_panels(dashboard)) >= 12

    def test_datasource__is_a_template_variable(self, dashboard: dict) -> None:
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for panel in data_panels(dashboard):
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"

    def test_panels__have_type_gridpos_and_targets(self, dashboard: dict) -> None:
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        for panel in dashboard["panels"]:
            grid = panel["gridPos"]
            assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y")), panel["title"]
            assert grid["x"] + grid["w"] <= GRID_WIDTH, panel["title"]
            if panel["type"] == "row":
                continue
            assert panel["type"] in {"timeseries", "stat", "gauge", "bargauge", "table"}
            refs = [t["refId"] for t in panel["targets"]]
            assert refs and len(refs) == len(set(refs)), panel["title"]
            assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]

    def test_panels__do_not_overlap(self, dashboard: dict) -> None:
        cells: dict[tuple[int, int], str] = {}
        for panel in dashboard["panels"]:
            grid = panel["gridPos"]
            for row in range(grid["y"], grid["y"] + grid["h"]):
                for col in range(grid["x"], grid["x"] + grid["w"]):
                    assert (row, col) not in cells, (panel["title"], cells.get((row, col)))
                    cells[(row, col)] = panel["title"]

    def test_expressions__have_balanced_brackets(self, dashboard: dict) -> None:
        pairs = {")": "(", "]": "[", "}": "{"}
        for expr in all_exprs(dashboard):
            stack: list[str] = []
            for char in re.sub(r'"(?:[^"\\]|\\.)*"', "", expr):
                if char in "([{":
                    stack.append(char)
                elif char in pairs:
                    assert stack and stack.pop() == pairs[char], expr
            assert not stack, expr


class TestGenerator:
    def test_committed_json__is_what_tools_dashboard_builds(self) -> None:
        path = DASHBOARD.parents[3] / "tools" / "dashboard.py"
        spec = importlib.util.spec_from_file_location("nhi_tools_dashboard", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        assert module.OUTPUT == DASHBOARD
        assert DASHBOARD.read_text(encoding="utf-8") == module.render(), (
            "edit tools/dashboard.py and run it; do not edit the JSON by hand")


class TestDashboardMetrics:
    def test_every_metric__is_exported_by_the_code(self, dashboard: dict) -> None:
        exact, histograms = exported()
        unknown = set()
        for expr in all_exprs(dashboard):
            for name in metric_names(expr):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                if name not in exact and base not in histograms:
                    unknown.add(name)
        assert unknown == set()

    def test_required_panels__are_present(self, dashboard: dict) -> None:
        used = set().union(*(metric_names(e) for e in all_exprs(dashboard)))
        missing = {what: name for what, name in REQUIRED.items() if name not in used}
        assert missing == {}

    def test_alerts_by_severity__shows_escalations_too(self, dashboard: dict) -> None:
        panel = next(p for p in data_panels(dashboard) if p["title"] == "Alerts by severity")
        legends = [t["legendFormat"] for t in panel["targets"]]
        assert legends == ["{{severity}}", "{{to_severity}} (escalated)"]
        assert "nhi_alert_escalations_total" in panel["targets"][1]["expr"]
        assert panel["targets"][1]["expr"].startswith("sum by (to_severity) (increase(")

    def test_no_identity_or_address_labels__in_queries(self, dashboard: dict) -> None:
        for expr in all_exprs(dashboard):
            assert not re.search(r"\b(identity|source_ip|ip|session)\b", expr), expr


def test_useful_queries_in_the_docs__parse_and_use_exported_metrics() -> None:
    doc = (DASHBOARD.parents[3] / "docs" / "metrics.md").read_text(encoding="utf-8")
    section = doc.split("## Useful queries", 1)[1]
    queries = re.findall(r"^- [^`]*: `([^`]+)`", section, flags=re.MULTILINE)
    exact, histograms = exported()
    assert len(queries) >= 4
    for query in queries:
        for name in metric_names(query):
            assert name in exact or re.sub(r"_(bucket|sum|count)$", "", name) in histograms
