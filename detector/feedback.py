"""The ``feedback`` subcommand: mark an alert as expected so its baseline learns it.

An analyst who closes an alert as "expected behaviour" runs::

    nhi-detector feedback --state state.bin --alerts alerts.jsonl --alert-id 3f2a…

Every signal of the alert's latest revision (detector and observed value) is taught to the
identity's profile (``IdentityProfile.mark_expected``) and remembered in the identity's
alert state, so the same deviation is not raised again. The snapshot is rewritten in
place (atomically) or to ``--out``. ``--identity``/``--detector``/``--value`` mark one
pair without an alerts file. Native alerts are read; OCSF documents do not carry the
observed values feedback needs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from detector.errors import ConfigError, InputError, NhiError, SinkError, StateError

logger = logging.getLogger(__name__)

# The families of signal names the models and policy rules emit (``models.base.Signal``);
# a hand-typed --detector outside them would be stored and never match anything.
DETECTOR_FAMILIES = frozenset({
    "novelty", "volume", "schedule", "dormancy", "credential", "multivariate", "identity",
    "policy",
})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--state", required=True, metavar="FILE", help="state snapshot written by replay")
    add("--out", metavar="FILE", help="write the updated snapshot here (default: in place)")
    add("--config", metavar="FILE", help="the configuration the snapshot was made with")
    add("--alerts", metavar="FILE", help="native alerts as JSON lines (with --alert-id)")
    add("--alert-id", action="append", default=[], metavar="ID",
        help="alert to mark as expected (repeatable)")
    add("--identity", metavar="KEY", help="mark one pair by hand: the identity key …")
    add("--detector", metavar="NAME", help="… the detector (e.g. novelty.action) …")
    add("--value", metavar="VALUE", help="… and the observed value (e.g. iam:CreateAccessKey)")


def run(args: argparse.Namespace) -> int:
    try:
        marks = list(_wanted_marks(args))
        if not marks:
            raise ConfigError("nothing to mark: give --alerts with --alert-id, or "
                              "--identity, --detector and --value")
        detector = _load_detector(args)
        applied = apply_marks(detector, marks)
        _write_state(Path(args.out or args.state), detector.export_state())
    except NhiError as err:
        print(f"nhi-detector feedback: {err}", file=sys.stderr)
        return 2
    for identity, detector_name, value, ok in applied:
        status = "marked expected" if ok else "identity not in snapshot, skipped"
        print(f"{status}: {identity} {detector_name} {value!r}")
    return 0 if all(ok for *_, ok in applied) else 1


def apply_marks(detector: Any, marks: Iterable[tuple[str, str, str]]) -> list[tuple]:
    """Mark each (identity, detector, value); returns each with whether it applied."""
    return [(i, d, v, detector.mark_expected(i, d, v)) for i, d, v in marks]


def marks_from_alert(native: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The (identity, detector, value) pairs of one native alert's signals."""
    identity = native["identity"]["key"]
    pairs = native.get("evidence", {}).get("signal_values") or native.get("signals", [])
    marks: list[tuple[str, str, str]] = []
    for pair in pairs:
        mark = (identity, pair["detector"], pair["value"])
        if mark not in marks:
            marks.append(mark)
    return marks


def _wanted_marks(args: argparse.Namespace) -> Iterator[tuple[str, str, str]]:
    if args.identity or args.detector or args.value is not None:
        if not (args.identity and args.detector and args.value is not None):
            raise ConfigError("--identity, --detector and --value go together")
        family = args.detector.partition(".")[0]
        if family not in DETECTOR_FAMILIES or "." not in args.detector:
            known = ", ".join(f"{name}.*" for name in sorted(DETECTOR_FAMILIES))
            raise ConfigError(f"--detector {args.detector!r} is not a detector name ({known})")
        yield args.identity, args.detector, args.value
    if args.alert_id:
        if not args.alerts:
            raise ConfigError("--alert-id needs --alerts FILE (native JSON lines)")
        found = find_alerts(args.alerts, set(args.alert_id))
        missing = sorted(set(args.alert_id) - set(found))
        if missing:
            raise ConfigError(f"alert id(s) {missing} not found in {args.alerts}")
        for native in found.values():
            yield from marks_from_alert(native)


def find_alerts(path: str, ids: set[str]) -> dict[str, dict[str, Any]]:
    """The latest revision of each wanted alert in a native JSON-lines file."""
    found: dict[str, dict[str, Any]] = {}
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as err:
        raise InputError("unreadable", f"cannot read alerts: {err.strerror}", origin=path) from err
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                native = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                raise InputError("invalid_json", str(err), origin=f"{path}:{number}") from err
            alert_id = native.get("alert_id") if isinstance(native, dict) else None
            if alert_id not in ids:
                continue
            if alert_id not in found or native["revision"] >= found[alert_id]["revision"]:
                found[alert_id] = native
    return found


def _load_detector(args: argparse.Namespace) -> Any:
    from detector.config import load_config
    from detector.engine import Detector
    from detector.stats import RunStats

    detector = Detector(load_config(args.config), stats=RunStats())
    try:
        data = Path(args.state).read_bytes()
    except OSError as err:
        raise StateError(f"cannot read state snapshot {args.state}: {err.strerror}") from err
    detector.load_state(data)
    return detector


def _write_state(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as err:
        raise SinkError(f"cannot write state snapshot {path}: {err.strerror}") from err
