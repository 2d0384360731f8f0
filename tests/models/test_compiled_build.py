"""The optional compiled build (``setup.py``; docs/architecture.md, "Compiled build") must
score exactly like the ``.py`` files it is compiled from: a fixed stream that reaches every
per-event model goes through the compiled modules here and through the ``.py`` sources in
a child process (``NHI_PURE_PYTHON=1``), and every signal and every saved blob must agree
byte for byte. Skipped when no compiled build is loaded (a pure Python install)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import models
from models.peers import PeerIndex
from models.profile import IdentityProfile
from models.settings import ModelSettings
from tests.models.helpers import T0, make_event

REPO = Path(__file__).resolve().parents[2]
IDENTITIES = [f"arn:aws:iam::12345678901{k}:role/job-{k}" for k in range(5)]


def scenario(seed: int, n: int = 5000) -> list:
    """Five identities with their own habits, then 40 days of silence for all (dormancy),
    a burst of new and failing calls by one of them (volume, distinct actions, failures,
    novelty), a long-term key on new networks, instance credentials on public networks."""
    rng = random.Random(seed)
    burst = range(n * 3 // 4, n * 3 // 4 + 300)
    ts = T0
    out = []
    for i in range(n):
        ts += rng.expovariate(2.0 if i in burst else 1 / 40.0)
        if i == n // 2:
            ts += 40 * 86400
        k = 0 if i in burst else rng.randrange(5)
        if i in burst:
            action = f"iam:Op{rng.randrange(80)}"
        else:
            action = f"s3:Op{k}{int(12 * rng.random() ** 3)}"
        public = rng.random() < 0.02
        failed = rng.random() < (0.5 if i in burst else 0.02)
        out.append(make_event(
            ts, action, identity=IDENTITIES[k],
            resource=f"arn:aws:s3:::bucket-{k}/{int(60 * rng.random() ** 4)}",
            region=("us-east-1", "eu-west-1")[rng.random() < 0.05],
            network="public" if public else "private",
            network_prefix=(f"203.0.113.{rng.randrange(256)}/32" if public
                            else f"10.{k}.{rng.randrange(3)}.0/24"),
            credential_id=f"AKIA{k}" if k == 3 else f"ASIA{k}{i // 900}",
            credential_type="long_term" if k == 3 else "temporary",
            outcome="failure" if failed else "success",
            error_code="AccessDenied" if failed else None,
            session="i-0abc1234" if k == 4 else None,
            attributes={"instance_id": "i-0abc1234"} if k == 4 else {},
        ))
    return out


def digest(seed: int = 3) -> dict:
    """Every signal and every profile blob (every 500 events, and reloaded at the end) of
    the scenario, hashed; plus the build that ran and the detectors that fired."""
    settings = ModelSettings(learning_min_days=0.5, learning_min_events=40)
    peers = PeerIndex(settings)
    profiles: dict[str, IdentityProfile] = {}
    signals, blobs = hashlib.sha256(), hashlib.sha256()
    fired = set()
    for i, event in enumerate(scenario(seed)):
        profile = profiles.get(event.identity)
        if profile is None:
            profile = profiles[event.identity] = IdentityProfile(
                event.identity, event.identity_kind, settings)
        for s in profile.observe(event, peers):
            fired.add(s.detector)
            signals.update(orjson.dumps(
                [i, s.detector, repr(s.score), s.observed, s.baseline, s.sentence, s.value,
                 s.degraded, s.cold_start, s.details], option=orjson.OPT_SORT_KEYS))
        if i % 500 == 499:
            for key in sorted(profiles):
                blobs.update(profiles[key].to_bytes())
    for key in sorted(profiles):
        blob = profiles[key].to_bytes()
        blobs.update(blob + IdentityProfile.from_bytes(blob, settings).to_bytes())
    blobs.update(peers.to_bytes())
    return {"build": models.BUILD, "signals": signals.hexdigest(),
            "blobs": blobs.hexdigest(), "fired": sorted(fired)}


@pytest.mark.skipif(not models.COMPILED, reason=f"no compiled build loaded ({models.BUILD})")
def test_compiled_models__same_signals_and_blobs_as_their_py_sources():
    import models.profile

    assert models.profile.__file__.endswith(".so") or models.profile.__file__.endswith(".pyd")
    compiled = digest()
    env = dict(os.environ, NHI_PURE_PYTHON="1")
    child = subprocess.run(
        [sys.executable, "-c", "import json; from tests.models.test_compiled_build import "
         "digest; print(json.dumps(digest()))"],
        cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=600)
    pure = json.loads(child.stdout)
    assert pure["build"].startswith("pure Python")
    assert compiled["build"] == "compiled (Cython)"
    for family in ("novelty.", "volume.", "dormancy.", "credential.", "schedule."):
        assert any(d.startswith(family) for d in compiled["fired"]), family
    assert (compiled["signals"], compiled["blobs"], compiled["fired"]) == (
        pure["signals"], pure["blobs"], pure["fired"])


def test_compiled_module_list__the_one_setup_py_builds():
    text = (REPO / "setup.py").read_text(encoding="utf-8")
    start = text.index("COMPILED = (")
    listed = text[start:text.index(")", start)]
    names = [part.strip().strip('"') for part in listed.split("(", 1)[1].split(",")]
    assert tuple(n for n in names if n) == models.COMPILED_MODULES
    for name in models.COMPILED_MODULES:
        assert (REPO / "models" / f"{name}.pxd").is_file()
