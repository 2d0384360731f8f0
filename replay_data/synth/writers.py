"""Write the rendered records to disk in each provider's delivery layout, byte-for-byte
reproducibly (gzip with mtime 0 and no file name, compact JSON, seeded shuffles).

- CloudTrail: ``aws/AWSLogs/<account>/CloudTrail/<region>/<YYYY>/<MM>/<DD>/
  <account>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<random16>.json.gz`` holding
  ``{"Records": [...]}``: one object per ~5-minute delivery window, records in no order and
  up to ~15 minutes late, plus a few ``CloudTrail-Digest`` objects.
- Kubernetes: ``k8s/<cluster>/<YYYY>/<MM>/kube-apiserver-audit-<YYYYMMDD>.log.gz``, one
  audit Event per line in stage order (the API server's audit log, rotated daily).
- GCP: ``gcp/<project>/cloudaudit.googleapis.com/<activity|data_access>/<YYYY>/<MM>/<DD>/
  00-00-00_23-59-59_S0.json.gz``, one LogEntry per line in time order (a log sink's shard
  naming, one shard per day, ``:`` replaced by ``-`` so the tree checks out on every OS).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import aws, gcp, k8s, world
from .core import DAY, HOUR, Call, Rng, iso_s
from .gen import DELAYS

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
WINDOW = 300.0
SPLIT_OVER = 250


def gz_bytes(text: str) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as fh:
        fh.write(text.encode("utf-8"))
    return buf.getvalue()


def dumps(record: Any) -> str:
    return json.dumps(record, separators=(",", ":"))


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


class Written:
    """What was written: files, bytes and records per source, for the summary and tests."""

    def __init__(self) -> None:
        self.files: dict[str, int] = defaultdict(int)
        self.bytes: dict[str, int] = defaultdict(int)
        self.records: dict[str, int] = defaultdict(int)

    def add(self, source: str, path: Path, data: bytes, records: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.files[source] += 1
        self.bytes[source] += len(data)
        self.records[source] += records


def write_all(calls: list[Call], out: Path, seed: int) -> Written:
    calls.sort(key=lambda c: (c.t, c.eid))
    done = Written()
    by_source: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        by_source[call.ident.source].append(call)
    write_cloudtrail(by_source["aws"], out / "aws", seed, done)
    write_k8s(by_source["k8s"], out / "k8s", seed, done)
    write_gcp(by_source["gcp"], out / "gcp", seed, done)
    return done


# --- CloudTrail ---------------------------------------------------------------------------

def _delivery(rng: Rng, t: float) -> float:
    roll, acc = rng.random(), 0.0
    for share, lo, hi in DELAYS:
        acc += share
        if roll <= acc:
            return math.ceil((t + rng.uniform(lo, hi)) / WINDOW) * WINDOW
    return math.ceil((t + 600) / WINDOW) * WINDOW


ISOLATED = "isolated"  # Call.extra flag: delivered and rendered apart (see write_cloudtrail)


def write_cloudtrail(calls: list[Call], root: Path, seed: int, done: Written) -> None:
    """Delivery files of every CloudTrail call. Calls flagged ``ISOLATED`` (a scenario
    added after the data set was published) are grouped, delivered and rendered with
    random streams of their own, in files of their own, so every other record keeps its
    bytes and its file: the shared streams draw exactly as before."""
    rng = Rng(f"{seed}|cloudtrail-delivery")
    groups: dict[tuple[str, str, float], list[Call]] = defaultdict(list)
    apart: dict[tuple[str, str, float], list[Call]] = defaultdict(list)
    for call in calls:
        acct = call.extra.get("recipient", call.ident.tenant)
        region = call.region or world.HOME_REGION
        if call.extra.get(ISOLATED):
            end = _delivery(Rng(f"{seed}|{call.eid}|delivery"), call.t)
            apart[(acct, region, end)].append(call)
            continue
        groups[(acct, region, _delivery(rng, call.t))].append(call)
    render_rng = Rng(f"{seed}|cloudtrail-render")
    index: dict[tuple[str, str], list[tuple[float, str, str, float, float]]] = defaultdict(list)
    for (acct, region, end) in sorted(groups):
        _write_batch(groups[(acct, region, end)], (acct, region, end), render_rng, root,
                     done, index)
    for (acct, region, end) in sorted(apart):
        own = Rng(f"{seed}|cloudtrail-isolated|{acct}|{region}|{end}")
        _write_batch(apart[(acct, region, end)], (acct, region, end), own, root, done, index)
    write_digests(index, root, render_rng, done)


def _write_batch(batch: list[Call], where: tuple[str, str, float], render_rng: Rng,
                 root: Path, done: Written,
                 index: dict[tuple[str, str], list[tuple[float, str, str, float, float]]]
                 ) -> None:
    acct, region, end = where
    records = [aws.render(c, render_rng) for c in batch]
    for chunk in _chunks(render_rng, records):
        render_rng.shuffle(chunk)
        key = _ct_key(acct, region, end, "".join(render_rng.choice(ALNUM) for _ in
                                                 range(16)))
        data = gz_bytes(dumps({"Records": chunk}))
        done.add("aws", root / key, data, len(chunk))
        times = [r["eventTime"] for r in chunk]
        index[(acct, region)].append((end, key, hashlib.sha256(data).hexdigest(),
                                      min(times), max(times)))


def _chunks(rng: Rng, records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    if len(records) <= SPLIT_OVER:
        return [records]
    n = math.ceil(len(records) / SPLIT_OVER)
    rng.shuffle(records)
    return [records[i::n] for i in range(n)]


def _ct_key(acct: str, region: str, end: float, suffix: str) -> str:
    d = _utc(end)
    return (f"AWSLogs/{acct}/CloudTrail/{region}/{d:%Y/%m/%d}/"
            f"{acct}_CloudTrail_{region}_{d:%Y%m%dT%H%MZ}_{suffix}.json.gz")


def write_digests(index: dict[tuple[str, str], list[tuple[float, str, str, str, str]]],
                  root: Path, rng: Rng, done: Written) -> None:
    """Hourly digest objects for the first three hours and the last hour of the trail.

    They are not audit events; readers must recognise and skip them."""
    for (acct, region), files in sorted(index.items()):
        first = min(f[0] for f in files)
        last = max(f[0] for f in files)
        start_hour = math.floor(first / HOUR) * HOUR
        hours = [start_hour + i * HOUR for i in range(3)] + [math.floor(last / HOUR) * HOUR]
        previous: tuple[str, str] | None = None
        for h0 in sorted(set(hours)):
            inside = [f for f in files if h0 < f[0] <= h0 + HOUR]
            if not inside:
                continue
            key, data = _digest(acct, region, h0, inside, previous, rng)
            done.add("aws-digest", root / key, data, 0)
            previous = (key, hashlib.sha256(data).hexdigest())


def _digest(acct: str, region: str, h0: float, files: list[tuple[float, str, str, str, str]],
            previous: tuple[str, str] | None, rng: Rng) -> tuple[str, bytes]:
    end = _utc(h0 + HOUR)
    bucket = "nw-org-cloudtrail-logs"
    key = (f"AWSLogs/{acct}/CloudTrail-Digest/{region}/{end:%Y/%m/%d}/{acct}_CloudTrail-"
           f"Digest_{region}_org-audit-trail_us-east-1_{end:%Y%m%dT%H%M%SZ}.json.gz")
    body = {
        "awsAccountId": acct, "digestStartTime": iso_s(h0), "digestEndTime": iso_s(h0 + HOUR),
        "digestS3Bucket": bucket, "digestS3Object": key,
        "digestPublicKeyFingerprint": rng.hex(32), "digestSignatureAlgorithm": "SHA256withRSA",
        "newestEventTime": max(f[4] for f in files), "oldestEventTime": min(f[3] for f in files),
        "previousDigestS3Bucket": bucket if previous else None,
        "previousDigestS3Object": previous[0] if previous else None,
        "previousDigestHashValue": previous[1] if previous else None,
        "previousDigestHashAlgorithm": "SHA-256" if previous else None,
        "previousDigestSignature": rng.hex(512) if previous else None,
        "logFiles": [{"s3Bucket": bucket, "s3Object": k, "hashValue": sha,
                      "hashAlgorithm": "SHA-256", "newestEventTime": newest,
                      "oldestEventTime": oldest} for _, k, sha, oldest, newest in files],
    }
    return key, gz_bytes(dumps(body))


# --- Kubernetes and GCP -------------------------------------------------------------------

def write_k8s(calls: list[Call], root: Path, seed: int, done: Written) -> None:
    rng = Rng(f"{seed}|k8s-render")
    lines: dict[tuple[str, float], list[tuple[float, str, str]]] = defaultdict(list)
    for call in calls:
        for when, record in k8s.render(call, rng):
            day = math.floor(when / DAY) * DAY
            lines[(call.ident.tenant, day)].append((when, call.eid, dumps(record)))
    for (cluster, day) in sorted(lines):
        rows = sorted(lines[(cluster, day)])
        d = _utc(day)
        path = root / cluster / f"{d:%Y/%m}" / f"kube-apiserver-audit-{d:%Y%m%d}.log.gz"
        done.add("k8s", path, gz_bytes("".join(r[2] + "\n" for r in rows)), len(rows))


def write_gcp(calls: list[Call], root: Path, seed: int, done: Written) -> None:
    rng = Rng(f"{seed}|gcp-render")
    lines: dict[tuple[str, str, float], list[tuple[float, str, str]]] = defaultdict(list)
    for call in calls:
        record = gcp.render(call, rng)
        project = record["logName"].split("/")[1]
        day = math.floor(call.t / DAY) * DAY
        lines[(project, gcp.log_of(call), day)].append((call.t, call.eid, dumps(record)))
    for (project, log, day) in sorted(lines):
        rows = sorted(lines[(project, log, day)])
        d = _utc(day)
        path = (root / project / "cloudaudit.googleapis.com" / log / f"{d:%Y/%m/%d}" /
                "00-00-00_23-59-59_S0.json.gz")
        done.add("gcp", path, gz_bytes("".join(r[2] + "\n" for r in rows)), len(rows))
