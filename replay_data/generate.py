#!/usr/bin/env python3
"""Generate the replay data set: 30 days of multi-cloud audit logs with labelled attacks.

    python3 replay_data/generate.py                      # rewrite the committed data set
    python3 replay_data/generate.py --out /tmp/big --days 60 --scale 3

Standard library only. The same seed, days, scale and start always give byte-identical
files. See replay_data/README.md for the archetypes, the scenarios and the labels format.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synth import estate, gcp, humans, k8s, scenarios, world, writers  # noqa: E402
from synth.core import DAY, HOUR, Call, iso_s  # noqa: E402
from synth.gen import Gen  # noqa: E402

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
OUTPUT_DIRS = ("aws", "k8s", "gcp")
DEFAULT_START = "2026-11-02"
DEFAULT_SEED = 20261102
HUMANS = 24
K8S_APPS = 40


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE,
                        help="output directory (default: this replay_data directory)")
    parser.add_argument("--days", type=int, default=30, help="days of activity (>= 10)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies the number of identities of each archetype")
    parser.add_argument("--start", default=DEFAULT_START, help="first day, YYYY-MM-DD (UTC)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary")
    args = parser.parse_args(argv)
    if args.days < 10:
        parser.error("--days must be at least 10 (a baseline and an attack window)")
    if args.scale <= 0:
        parser.error("--scale must be positive")
    return args


def simulate(g: Gen) -> tuple[list[scenarios.Scenario], list[dict[str, object]]]:
    """Run every simulation; returns the scenarios and the benign changes."""
    handles = estate.build(g)
    k8s.cluster(g, "prod", max(3, round(K8S_APPS * g.scale)))
    gcp.projects(g)
    crowd = humans.simulate(g, max(2, round(HUMANS * g.scale)))
    benign = benign_changes(g, handles, crowd)
    return scenarios.build(g, handles), benign


def rotate_key(g: Gen, handles: dict, crowd: dict, rotation_day: int) -> None:
    """An administrator rotates svc-jenkins-legacy's key (the user switches keys itself)."""
    admin = next(p for p in crowd["people"] if p.team == "platform")
    role = crowd["roles"][("prod", "AdministratorAccess")]
    jenkins = handles.get("svc-jenkins-legacy")
    if jenkins is not None:
        t = g.day_t(rotation_day) + 15 * HOUR + 30 * 60
        user = jenkins.ident.name
        old, new = jenkins.extra["old_key"].key_id, jenkins.extra["new_key"].key_id
        humans.act_as(g, admin, role, t, "iam:ListAccessKeys", user_name=user)
        humans.act_as(g, admin, role, t + 40, "iam:CreateAccessKey", user_name=user,
                      new_key=new)
        humans.act_as(g, admin, role, t + DAY, "iam:UpdateAccessKey", user_name=user,
                      key_id=old)
        humans.act_as(g, admin, role, t + 3 * DAY, "iam:DeleteAccessKey", user_name=user,
                      key_id=old)


def benign_changes(g: Gen, handles: dict, crowd: dict) -> list[dict[str, object]]:
    """The key rotation is acted out here; the other changes are built into their
    identities' simulations and only described."""
    rotation_day = 15 if g.days >= 30 else g.days // 2
    rotate_key(g, handles, crowd, rotation_day)
    acct = world.ACCOUNTS
    return [
        _benign("B01-new-lambda", "New Lambda function from day 14",
                "prod-fraud-scorer-role appears on day 14 with its own API set.",
                [f"arn:aws:iam::{acct['prod']}:role/prod-fraud-scorer-role"], g, 14),
        _benign("B02-new-service", "New service deployed on day 12",
                "gha-deploy-recommendations (CI) and the recommendations service account "
                "appear on day 12.",
                [f"arn:aws:iam::{acct['prod']}:role/gha-deploy-recommendations",
                 "system:serviceaccount:recommendations:recommendations"], g, 12),
        _benign("B03-deploy-adds-api", "A deploy adds one API",
                "prod-invoice-renderer starts calling kms:GenerateDataKey on day 24.",
                [f"arn:aws:iam::{acct['prod']}:role/prod-invoice-renderer-role"], g, 24),
        _benign("B04-maintenance-burst", "Maintenance burst",
                "nightly-rds-snapshot runs six times its usual work on day 18.",
                [f"arn:aws:iam::{acct['prod']}:role/nightly-rds-snapshot"], g, 18),
        _benign("B05-weekly-job", "Weekly job",
                "weekly-access-review runs on Sundays only (IAM credential report, keys).",
                [f"arn:aws:iam::{acct['prod']}:role/weekly-access-review"], g, 6),
        _benign("B06-key-rotation", "Access-key rotation",
                "An administrator creates a new key for svc-jenkins-legacy on day 15; the new "
                "key is used from 15:40, the old one is deactivated a day later and deleted.",
                [f"arn:aws:iam::{acct['prod']}:user/svc-jenkins-legacy"], g, rotation_day),
        _benign("B07-tool-upgrade", "Terraform upgrade",
                "Terraform 1.9.8 -> 1.10.0 and provider 5.76 -> 5.80 from day 19 (new user "
                "agent for the terraform-plan/apply roles).",
                [f"arn:aws:iam::{acct['prod']}:role/terraform-plan",
                 f"arn:aws:iam::{acct['prod']}:role/terraform-apply"], g, 19),
        _benign("B08-new-gcp-sa", "New GCP service account",
                "feature-store-sync appears on day 16.",
                [gcp.sa_email("feature-store-sync", world.GCP_PROJECTS["ml"])], g, 16),
        _benign("B09-new-human", "A new engineer joins",
                "The last person of the team starts on day 20.", [], g, 20),
    ]


def _benign(bid: str, title: str, description: str, identities: list[str], g: Gen,
            day: int) -> dict[str, object]:
    return {"id": bid, "title": title, "description": description, "identities": identities,
            "start": iso_s(g.day_t(day))}


def labels(g: Gen, found: list[scenarios.Scenario], calls: list[Call]) -> dict[str, object]:
    by_id: dict[str, list[Call]] = {}
    for call in calls:
        if call.scenario:
            by_id.setdefault(call.scenario, []).append(call)
    out = []
    for sc in found:
        mine = sorted(by_id.get(sc.id, []), key=lambda c: (c.t, c.eid))
        if not mine:
            continue
        out.append({"id": sc.id, "title": sc.title, "description": sc.description,
                    "identities": sc.identities, "start": iso_s(mine[0].t),
                    "end": iso_s(mine[-1].t + 2), "event_ids": [c.eid for c in mine],
                    "techniques": sc.techniques})
    return {"version": 1, "scenarios": out}


def clean(out: Path) -> None:
    """Remove only what a previous run of this generator wrote."""
    for name in OUTPUT_DIRS:
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    for name in ("labels.json",):
        if (out / name).exists():
            (out / name).unlink()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if not args.quiet else logging.WARNING,
                        format="%(message)s")
    began = time.monotonic()
    start = datetime.strptime(args.start, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()
    g = Gen(args.seed, start, args.days, args.scale)
    found, benign = simulate(g)
    args.out.mkdir(parents=True, exist_ok=True)
    clean(args.out)
    written = writers.write_all(g.calls, args.out, args.seed)
    doc = labels(g, found, g.calls)
    doc["benign_changes"] = benign
    doc["generator"] = {"seed": args.seed, "days": args.days, "scale": args.scale,
                        "start": iso_s(start)}
    (args.out / "labels.json").write_text(json.dumps(doc, indent=1) + "\n")
    summary(g, written, doc, time.monotonic() - began)
    return 0


def summary(g: Gen, written: writers.Written, doc: dict, seconds: float) -> None:
    kinds = Counter((i.source, i.kind) for i in g.identities.values())
    archetypes = Counter(i.archetype for i in g.identities.values() if i.kind == "machine")
    log.info("identities: %s", dict(sorted(kinds.items())))
    log.info("machine archetypes: %s", dict(sorted(archetypes.items())))
    for source in sorted(written.files):
        log.info("%-10s %6d files %8d records %6.1f MB", source, written.files[source],
                 written.records[source], written.bytes[source] / 1e6)
    log.info("total %.1f MB, %d scenarios, %.0f s", sum(written.bytes.values()) / 1e6,
             len(doc["scenarios"]), seconds)


if __name__ == "__main__":
    sys.exit(main())
