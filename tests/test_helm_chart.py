"""The Helm chart, linted and rendered by the real ``helm`` binary.

helm comes from PATH or is built once with Go by ``tools/helm.py``. Without either the
tests skip, unless ``NHI_REQUIRE_HELM=1`` (set by .ci/run), where they fail loudly.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "helm" / "nhi-detector"
CI_VALUES = CHART / "ci" / "sasl-tls-values.yaml"
DASHBOARD = CHART / "dashboards" / "nhi-detector.json"

pytestmark = pytest.mark.helm


def load_helm_tool():
    spec = importlib.util.spec_from_file_location("nhi_tools_helm", REPO / "tools" / "helm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    required = os.environ.get("NHI_REQUIRE_HELM") == "1"
    try:
        path = load_helm_tool().ensure_helm()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        if required:
            pytest.fail(f"NHI_REQUIRE_HELM=1 but helm could not be built: {err}")
        pytest.skip(f"helm could not be built: {err}")
    if path is None:
        if required:
            pytest.fail("NHI_REQUIRE_HELM=1 but neither helm nor Go is available")
        pytest.skip("neither helm on PATH nor Go to build it")
    return path


def helm(helm_bin: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(helm_bin), *args], capture_output=True, text=True, timeout=180,
                          check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def render(helm_bin: Path, *extra: str) -> list[dict]:
    out = helm(helm_bin, "template", "nhi", str(CHART), "--namespace", "sec", *extra).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def one(docs: list[dict], kind: str, suffix: str = "") -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, [d["metadata"]["name"] for d in found]
    return found[0]


def container(docs: list[dict]) -> dict:
    return one(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]


def env_of(docs: list[dict]) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(docs)["env"]}


@pytest.fixture(scope="module")
def default_docs(helm_bin: Path) -> list[dict]:
    return render(helm_bin)


@pytest.fixture(scope="module")
def secure_docs(helm_bin: Path) -> list[dict]:
    return render(helm_bin, "-f", str(CI_VALUES))


class TestLint:
    def test_lint__default_values(self, helm_bin: Path) -> None:
        proc = helm(helm_bin, "lint", "--strict", str(CHART))
        assert "0 chart(s) failed" in proc.stdout

    def test_lint__sasl_tls_and_service_monitor(self, helm_bin: Path) -> None:
        proc = helm(helm_bin, "lint", "--strict", str(CHART), "-f", str(CI_VALUES))
        assert "0 chart(s) failed" in proc.stdout


    def test_package__ships_the_dashboard_not_the_ci_values(self, helm_bin: Path,
                                                             tmp_path: Path) -> None:
        helm(helm_bin, "package", str(CHART), "--destination", str(tmp_path))
        (archive,) = tmp_path.glob("nhi-detector-*.tgz")
        with tarfile.open(archive) as tar:
            names = set(tar.getnames())
        assert "nhi-detector/dashboards/nhi-detector.json" in names
        assert "nhi-detector/templates/statefulset.yaml" in names
        assert not [name for name in names if "/ci/" in name]


class TestDefaultRender:
    def test_objects(self, default_docs: list[dict]) -> None:
        kinds = sorted(d["kind"] for d in default_docs)
        assert kinds == ["ConfigMap", "ConfigMap", "PodDisruptionBudget", "Service", "Service",
                         "ServiceAccount", "StatefulSet"]
        pdb = one(default_docs, "PodDisruptionBudget")
        pod_labels = one(default_docs, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    def test_probes__point_at_the_health_port(self, default_docs: list[dict]) -> None:
        worker = container(default_docs)
        ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
        assert ports == {"http": 6066}
        paths = {}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert worker[probe]["httpGet"]["port"] == "http", probe
            paths[probe] = worker[probe]["httpGet"]["path"]
        # /livez answers 200 at once: the startup probe asks the endpoint that fails until
        # the first table recovery is done
        assert paths == {"startupProbe": "/startupz", "livenessProbe": "/livez",
                         "readinessProbe": "/readyz"}
        env = env_of(default_docs)
        assert (env["NHI_WEB_PORT"], env["NHI_WEB_HOST"]) == ("6066", "0.0.0.0")

    def test_env__names_only_settings_the_worker_reads(self, default_docs, secure_docs) -> None:
        settings = pytest.importorskip("streams.settings")
        known = {setting.env for setting in settings.SETTINGS}
        rendered = set(env_of(default_docs)) | set(env_of(secure_docs))
        assert rendered - known == set()
        assert {"NHI_BOOTSTRAP_SERVERS", "NHI_RAW_TOPICS", "NHI_SASL_PASSWORD",
                "NHI_SSL_CAFILE", "NHI_STATE_DIR", "NHI_WORKER_ID"} <= rendered

    def test_args__parse_with_the_worker_flags(self, default_docs: list[dict]) -> None:
        settings = pytest.importorskip("streams.settings")
        parser = argparse.ArgumentParser()
        settings.add_arguments(parser)
        args = container(default_docs)["args"]
        parsed = parser.parse_args(args[args.index("worker") + 1:])
        assert parsed.config == "/etc/nhi-detector/config/config.yaml"
        assert parsed.suppressions == "/etc/nhi-detector/config/suppressions.yaml"

    def test_verbosity__maps_to_cli_flags(self, helm_bin: Path) -> None:
        quiet = container(render(helm_bin, "--set", "worker.verbosity=0"))["args"]
        debug = container(render(helm_bin, "--set", "worker.verbosity=2"))["args"]
        assert (quiet[0], debug[:2]) == ("worker", ["-vv", "worker"])

    def test_service__exposes_metrics_and_health(self, default_docs: list[dict]) -> None:
        service = one(default_docs, "Service", "nhi-detector")
        ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
        assert ports == {"http": (6066, "http")}
        pod_labels = one(default_docs, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()

    def test_data_dir__is_one_volume_claim_per_pod(self, default_docs: list[dict]) -> None:
        sts = one(default_docs, "StatefulSet")
        claims = sts["spec"]["volumeClaimTemplates"]
        assert [c["metadata"]["name"] for c in claims] == ["data"]
        assert claims[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
        mounts = {m["name"]: m["mountPath"] for m in container(default_docs)["volumeMounts"]}
        assert mounts["data"] == env_of(default_docs)["NHI_STATE_DIR"] == "/var/lib/nhi-detector"
        # the worker's data dir is NHI_STATE_DIR/NHI_WORKER_ID: the pod's own name
        assert env_of(default_docs)["NHI_WORKER_ID"] == {
            "fieldRef": {"fieldPath": "metadata.name"}}
        volumes = {v["name"] for v in sts["spec"]["template"]["spec"]["volumes"]}
        assert "data" not in volumes  # a pod-level volume would be shared, not per pod
        assert sts["spec"]["serviceName"] == one(default_docs, "Service", "-headless")[
            "metadata"]["name"]

    def test_persistence_off__uses_empty_dir(self, helm_bin: Path) -> None:
        docs = render(helm_bin, "--set", "persistence.enabled=false")
        sts = one(docs, "StatefulSet")
        assert "volumeClaimTemplates" not in sts["spec"]
        volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
        assert volumes["data"]["emptyDir"] == {}

    def test_dashboard_config_map__holds_the_dashboard(self, default_docs: list[dict]) -> None:
        cm = one(default_docs, "ConfigMap", "-dashboard")
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        shipped = json.loads(cm["data"]["nhi-detector.json"])
        assert shipped == json.loads(DASHBOARD.read_text(encoding="utf-8"))

    def test_plaintext_by_default(self, default_docs: list[dict]) -> None:
        env = env_of(default_docs)
        assert env["NHI_SECURITY_PROTOCOL"] == "PLAINTEXT"
        assert "NHI_SASL_PASSWORD" not in env and "NHI_SSL_CAFILE" not in env
        assert env["NHI_RAW_TOPICS"] == "nhi.raw"

    def test_config_files__mounted_where_the_args_point(self, default_docs: list[dict]) -> None:
        worker = container(default_docs)
        mounts = {m["name"]: m["mountPath"] for m in worker["volumeMounts"]}
        args = worker["args"]
        assert args[:2] == ["-v", "worker"]
        cm = one(default_docs, "ConfigMap", "-config")
        for flag in ("--config", "--suppressions"):
            path = Path(args[args.index(flag) + 1])
            assert str(path.parent) == mounts["config"]
            assert path.name in cm["data"]


class TestSecureRender:
    def test_sasl_over_tls(self, secure_docs: list[dict]) -> None:
        env = env_of(secure_docs)
        assert env["NHI_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["NHI_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["NHI_SASL_PASSWORD"] == {
            "secretKeyRef": {"name": "nhi-kafka-credentials", "key": "sasl-password"}}
        assert env["NHI_RAW_TOPICS"] == "cloudtrail-raw,k8s-audit-raw"
        assert not [d for d in secure_docs if d["kind"] == "Secret"]  # existing one is used

    def test_tls_files__come_from_the_mounted_secret(self, secure_docs: list[dict]) -> None:
        env = env_of(secure_docs)
        mounts = {m["name"]: m["mountPath"] for m in container(secure_docs)["volumeMounts"]}
        for var, key in (("NHI_SSL_CAFILE", "ca.crt"), ("NHI_SSL_CERTFILE", "tls.crt"),
                         ("NHI_SSL_KEYFILE", "tls.key")):
            assert env[var] == f"{mounts['kafka-tls']}/{key}"
        volumes = one(secure_docs, "StatefulSet")["spec"]["template"]["spec"]["volumes"]
        assert {"name": "kafka-tls", "secret": {"secretName": "nhi-kafka-tls"}} in volumes

    def test_service_monitor__scrapes_the_metrics_port(self, secure_docs: list[dict]) -> None:
        monitor = one(secure_docs, "ServiceMonitor")
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        endpoint = monitor["spec"]["endpoints"][0]
        assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == (
            "http", "/metrics", "15s")
        service = one(secure_docs, "Service", "nhi-detector")
        assert "http" in {p["name"] for p in service["spec"]["ports"]}
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"][
            "labels"].items()
        # the headless Service selects the same pods: matching it too scraped each twice
        matched = [d["metadata"]["name"] for d in secure_docs if d["kind"] == "Service"
                   and monitor["spec"]["selector"]["matchLabels"].items()
                   <= d["metadata"]["labels"].items()]
        assert matched == [service["metadata"]["name"]]
        assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["sec"]

    def test_config_and_suppressions__rendered_from_values(self, secure_docs) -> None:
        cm = one(secure_docs, "ConfigMap", "-config")
        values = yaml.safe_load(CI_VALUES.read_text(encoding="utf-8"))
        assert yaml.safe_load(cm["data"]["config.yaml"]) == values["config"]
        assert yaml.safe_load(cm["data"]["suppressions.yaml"]) == values["suppressions"]

    def test_inline_password__is_refused(self, helm_bin: Path) -> None:
        proc = helm(helm_bin, "template", "nhi", str(CHART), "--set", "kafka.sasl.enabled=true",
                    "--set", "kafka.sasl.username=svc", "--set", "kafka.sasl.existingSecret=s",
                    "--set", "kafka.sasl.password=s3cret", check=False)
        assert proc.returncode != 0
        assert "secrets never go in values" in proc.stderr
        assert "s3cret" not in proc.stdout

    def test_sasl_without_secret__fails_with_a_message(self, helm_bin: Path) -> None:
        proc = helm(helm_bin, "template", "nhi", str(CHART), "--set", "kafka.sasl.enabled=true",
                    "--set", "kafka.sasl.username=svc", check=False)
        assert proc.returncode != 0
        assert "kafka.sasl.enabled needs kafka.sasl.existingSecret" in proc.stderr

    def test_user_name__can_come_from_the_secret_too(self, helm_bin: Path) -> None:
        docs = render(helm_bin, "--set", "kafka.sasl.enabled=true",
                      "--set", "kafka.sasl.existingSecret=creds",
                      "--set", "kafka.sasl.usernameKey=user", "--set", "kafka.sasl.mechanism=PLAIN")
        env = env_of(docs)
        assert env["NHI_SASL_USERNAME"] == {"secretKeyRef": {"name": "creds", "key": "user"}}
        assert env["NHI_SASL_PASSWORD"] == {"secretKeyRef": {"name": "creds", "key": "password"}}
        assert (env["NHI_SASL_MECHANISM"], env["NHI_SECURITY_PROTOCOL"]) == (
            "PLAIN", "SASL_PLAINTEXT")
        assert not [d for d in docs if d["kind"] == "Secret"]


class TestRefusedValues:
    """Values the worker could not run with fail the render, instead of a pod that
    crash-loops or a scrape that gets 404."""

    @pytest.mark.parametrize("value", ["kafka.bootstrapServers=", "kafka.bootstrapServers=null"])
    def test_empty_bootstrap_servers(self, helm_bin: Path, value: str) -> None:
        proc = helm(helm_bin, "template", "nhi", str(CHART), "--set", value, check=False)
        assert proc.returncode != 0
        assert "kafka.bootstrapServers is required: the Kafka brokers as host:port" in \
            proc.stderr

    @pytest.mark.parametrize("key", ["metricsPath", "livenessPath", "readinessPath"])
    def test_path_values__are_not_read(self, helm_bin: Path, key: str) -> None:
        proc = helm(helm_bin, "template", "nhi", str(CHART), "--set", f"web.{key}=/prom",
                    "--set", "metrics.serviceMonitor.enabled=true", check=False)
        assert proc.returncode != 0
        assert f"web.{key} is not read: the worker serves fixed paths" in proc.stderr

    def test_served_paths__are_the_rendered_ones(self, secure_docs: list[dict]) -> None:
        from detector.stats import RunStats
        from streams.health import HealthServer, HealthState

        worker = container(secure_docs)
        paths = {worker[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe",
                                                        "readinessProbe")}
        paths.add(one(secure_docs, "ServiceMonitor")["spec"]["endpoints"][0]["path"])
        state = HealthState(liveness_commit_age=60.0)
        server = HealthServer(state, RunStats(), host="127.0.0.1", port=0,
                              worker_values=lambda: {"ready": False}).start()
        try:
            for path in sorted(paths):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}",
                                                timeout=5) as response:
                        code = response.status
                except urllib.error.HTTPError as err:
                    code = err.code
                assert code in (200, 503), (path, code)  # served: never 404
        finally:
            server.stop()


class TestWorkerSettings:
    """Every tuning value reaches the worker as the NHI_* variable it reads."""

    TUNING = {"NHI_MAX_FETCH_BYTES": "8388608", "NHI_INGEST_WINDOW": "0.25",
              "NHI_INGEST_MAX_MESSAGES": "2000", "NHI_IO_TIMEOUT": "10",
              "NHI_SESSION_TIMEOUT": "45", "NHI_COMMIT_INTERVAL": "5",
              "NHI_STARTUP_TIMEOUT": "600", "NHI_LOCK_WAIT": "60", "NHI_CREATE_TOPICS": "true",
              "NHI_ACCOUNTING_TOPIC": "nhi.accounting"}

    def test_defaults__equal_the_worker_defaults(self, default_docs: list[dict]) -> None:
        settings = pytest.importorskip("streams.settings")
        env = env_of(default_docs)
        by_env = {s.env: s for s in settings.SETTINGS}
        for name in set(self.TUNING) - {"NHI_ACCOUNTING_TOPIC"}:
            setting = by_env[name]
            value = env[name]
            parsed = value == "true" if setting.kind is bool else setting.kind(value)
            assert parsed == setting.default, (name, value, setting.default)
        assert "NHI_ACCOUNTING_TOPIC" not in env  # off unless a topic is named

    def test_values__render_the_variables(self, secure_docs: list[dict]) -> None:
        env = env_of(secure_docs)
        assert {name: env.get(name) for name in self.TUNING} == self.TUNING

    def test_values__load_as_worker_settings(self, secure_docs: list[dict]) -> None:
        settings = pytest.importorskip("streams.settings")
        env = {k: v for k, v in env_of(secure_docs).items() if isinstance(v, str)}
        parser = argparse.ArgumentParser()
        settings.add_arguments(parser)
        loaded = settings.load_settings(parser.parse_args([]), env, None)
        assert (loaded.max_fetch_bytes, loaded.ingest_window, loaded.ingest_max_messages,
                loaded.io_timeout, loaded.session_timeout, loaded.create_topics) == (
            8388608, 0.25, 2000, 10.0, 45.0, True)


def example_values() -> list[tuple[str, list[str]]]:
    """Every example of values the chart's docs give: the defaults, each ``ci/*.yaml`` and
    the ``--set`` arguments of the README's install command."""
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    sets = re.findall(r"--set '?([^'\s]+)'?", readme.split("```sh", 1)[1].split("```", 1)[0])
    examples = [("defaults", []), ("README install", [a for v in sets for a in ("--set", v)])]
    examples += [(path.name, ["-f", str(path)]) for path in sorted(CHART.glob("ci/*.yaml"))]
    return examples


class TestExampleValues:
    """The chart's examples render into a config the worker accepts: the sasl-tls example's
    config.yaml once made every pod crash-loop ("scoring: unknown key(s)
    ['cooldown_minutes']") while helm lint passed."""

    @pytest.mark.parametrize(("name", "extra"), example_values(), ids=lambda v: str(v)[:40])
    def test_rendered_config__loads_in_the_worker(self, helm_bin: Path, tmp_path: Path,
                                                    name: str, extra: list[str]) -> None:
        from detector.config import load_config
        from detector.stats import RunStats
        from streams import settings as worker_settings
        from streams.worker import build_detector

        docs = render(helm_bin, *extra)
        data = one(docs, "ConfigMap", "-config")["data"]
        args = container(docs)["args"]
        args = args[args.index("worker") + 1:]
        for flag in ("--config", "--suppressions"):  # the ConfigMap's files, here
            local = tmp_path / Path(args[args.index(flag) + 1]).name
            local.write_text(data[local.name], encoding="utf-8")
            args[args.index(flag) + 1] = str(local)
        config = load_config(args[args.index("--config") + 1])
        parser = argparse.ArgumentParser()
        worker_settings.add_arguments(parser)
        env = {k: v for k, v in env_of(docs).items() if isinstance(v, str)}
        loaded = worker_settings.load_settings(parser.parse_args(args), env, config.get("worker"))
        detector = build_detector(config, loaded, RunStats())
        rules = yaml.safe_load(data["suppressions.yaml"])["rules"]
        assert len(detector.suppressions) == len(rules), name
        assert loaded.shadow == detector.shadow

    def test_examples__include_every_documented_one(self) -> None:
        names = [name for name, _ in example_values()]
        assert {"sasl-tls-values.yaml", "warm-start-values.yaml", "README install"} <= set(names)


class TestValuesSchema:
    """values.schema.json makes helm refuse what the worker would: a misspelt key or value
    rendered cleanly before and failed in every pod."""

    @pytest.mark.parametrize(("value", "problem"), [
        ("worker.alertFormat=ocsv", "at '/worker/alertFormat': value must be one of"),
        ("worker.store=rocks", "at '/worker/store': value must be one of"),
        ("worker.verbosty=1", "additional properties 'verbosty' not allowed"),
        ("worker.verbosity=3", "at '/worker/verbosity'"),
        ("config.scoring.cooldown_minutes=60", "invalid propertyName 'cooldown_minutes'"),
        ("config.model.seed=7", "additional properties 'model' not allowed"),
        ("topics.partitions=zero", "at '/topics/partitions': got string, want integer"),
        ("kafka.sasl.mechanism=SCRAM", "at '/kafka/sasl/mechanism': value must be one of"),
    ])
    def test_typos__refused_by_template_and_lint(self, helm_bin: Path, value: str,
                                                 problem: str) -> None:
        for command in (("template", "nhi"), ("lint", "--strict")):
            proc = helm(helm_bin, *command, str(CHART), "--set", value, check=False)
            assert proc.returncode != 0, (command, value)
            assert problem in proc.stderr + proc.stdout, (command, proc.stderr)

    def test_config_keys__are_the_products(self) -> None:
        from dataclasses import fields

        from detector.scoring import ScoringSettings
        from detector.sweeps import SweepSettings
        from models.settings import ModelSettings
        from streams.settings import BY_NAME

        schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
        sections = schema["properties"]["config"]["properties"]
        listed = {name: set(sections[name]["propertyNames"]["enum"])
                  for name in ("models", "scoring", "sweeps", "worker")}
        assert listed == {"models": {f.name for f in fields(ModelSettings)},
                          "scoring": set(ScoringSettings.__dataclass_fields__),
                          "sweeps": {f.name for f in fields(SweepSettings)},
                          "worker": set(BY_NAME)}
        from detector.config import KNOWN_SECTIONS

        assert set(sections) == KNOWN_SECTIONS

    def test_values_file__every_key_has_a_schema(self) -> None:
        schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
        values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))

        def missing(node: dict, shape: dict, where: str) -> list[str]:
            out = []
            for key, value in node.items():
                sub = shape.get("properties", {}).get(key)
                if sub is None:
                    out.append(f"{where}{key}")
                elif isinstance(value, dict) and "properties" in sub:
                    out += missing(value, sub, f"{where}{key}.")
            return out

        assert missing(values, schema, "") == []


class TestWarmStart:
    def test_snapshot__mounted_where_load_state_points(self, helm_bin: Path) -> None:
        docs = render(helm_bin, "-f", str(CHART / "ci" / "warm-start-values.yaml"))
        mounts = {m["name"]: m for m in container(docs)["volumeMounts"]}
        volumes = {v["name"]: v for v in one(docs, "StatefulSet")["spec"]["template"]["spec"][
            "volumes"]}
        snapshot = Path(env_of(docs)["NHI_LOAD_STATE"])
        assert str(snapshot.parent) == mounts["snapshots"]["mountPath"]
        assert mounts["snapshots"]["readOnly"] is True
        assert volumes["snapshots"]["persistentVolumeClaim"]["claimName"] == "nhi-snapshots"

    def test_no_snapshot__by_default(self, default_docs: list[dict]) -> None:
        assert "NHI_LOAD_STATE" not in env_of(default_docs)


class TestPrometheusRule:
    def test_rules__query_only_exported_metrics(self, helm_bin: Path) -> None:
        from tests.test_dashboard import exported, metric_names

        docs = render(helm_bin, "--set", "prometheusRule.enabled=true")
        rules = one(docs, "PrometheusRule")["spec"]["groups"][0]["rules"]
        exact, histograms = exported()
        assert len(rules) >= 5
        for rule in rules:
            names = metric_names(rule["expr"])  # parsed by promql-parser when installed
            assert names, rule["alert"]
            for name in names:
                assert name in exact or name.rsplit("_", 1)[0] in histograms, (rule, name)
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}

    def test_stuck_consumer_rule__uses_the_liveness_threshold(self, helm_bin: Path) -> None:
        docs = render(helm_bin, "--set", "prometheusRule.enabled=true",
                      "--set", "worker.livenessCommitAgeSeconds=120")
        rules = {r["alert"]: r for r in one(docs, "PrometheusRule")["spec"]["groups"][0]["rules"]}
        stuck = rules["NhiDetectorConsumerStuck"]
        assert re.search(r"nhi_kafka_last_commit_age_seconds\{namespace=\"sec\"\}\s*> 120",
                         stuck["expr"]), stuck["expr"]
        # Prometheus' own templating survives Helm's
        assert "{{ $labels.pod }}" in stuck["annotations"]["description"]
        assert env_of(docs)["NHI_LIVENESS_COMMIT_AGE"] == "120"
