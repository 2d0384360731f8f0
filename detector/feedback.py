"""The ``feedback`` subcommand: mark an alert as expected so its baseline learns it.

An analyst who closes an alert as "expected behaviour" runs::

    nhi-detector feedback --state state.bin --alerts alerts.jsonl --alert-id 3f2a…

Every signal of the alert's latest revision (detector and observed value) is taught to the
identity's profile (``IdentityProfile.mark_expected``) and remembered in the identity's
alert state, so the same deviation is not raised again. The snapshot is rewritten in
place (atomically) or to ``--out``. ``--identity``/``--detector``/``--value`` mark one
pair without an alerts file. Native alerts are read, and OCSF Detection Findings written by
this detector (``unmapped.nhi_signal_values`` holds the pairs).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import types
from datetime import datetime
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from detector.errors import ConfigError, InputError, NhiError

logger = logging.getLogger(__name__)

OCSF_CLASS_UID = 2004  # a Detection Finding (``detector.ocsf``)

# Signals the models emit under a name written where they are made, not in a table
# (``models.novelty.DETECTORS`` and ``models.volume.DETECTORS`` hold the others).
MODEL_DETECTORS = (
    "multivariate.hst", "schedule.off_hours", "dormancy.identity", "dormancy.credential",
    "credential.concurrent_networks", "credential.instance_outside_cloud", "identity.new",
    "volume.daily",
)
TECHNIQUE_MODULES = ("aws", "azure", "gcp", "k8s")
_RULE_NAME = re.compile(rf"(?:{'|'.join(TECHNIQUE_MODULES)})\.[a-z][a-z0-9_]*")
_RULE_SUFFIX = re.compile(r"\.[a-z][a-z0-9_]*")


def known_detectors(config: Mapping[str, Any] | None = None) -> frozenset[str]:
    """Every detector name a signal can carry, so a hand-typed ``--detector`` is checked.

    A misspelt name (``novelty.actoin``) would be stored in the snapshot and match no
    signal ever, while the command said it was recorded. The names: the models' detectors,
    ``policy.<category>`` for each policy category of the sensitivity catalogue and
    ``policy.<name>`` for each configured policy rule, and ``technique.<rule>`` for each
    rule of ``detector.techniques``, read from the names its checks are written with, and
    the cross-identity ``sweep.*`` detectors (``detector.sweeps``)."""
    from models import novelty, volume

    from detector import sweeps
    from detector.scoring import ScoringSettings, SensitivityCatalogue

    settings = ScoringSettings.from_config((config or {}).get("scoring"))
    catalogue = SensitivityCatalogue.load(settings.catalogue_path)
    names = {*novelty.DETECTORS, *volume.DETECTORS, *MODEL_DETECTORS,
             *sweeps.DETECTORS.values()}
    names.update(f"policy.{sens.category}" for _, sens in catalogue.categories if sens.policy)
    names.update(f"policy.{rule.get('name') or 'rule'}" for rule in settings.policy_rules)
    names.update(f"technique.{rule}" for rule in technique_rules())
    return frozenset(names)


def technique_rules() -> set[str]:
    """The rule names of ``detector.techniques``: each ``<cloud>.<name>`` a check of
    ``aws``, ``azure``, ``gcp`` or ``k8s`` is written with, and each ``<cloud>.<suffix>``
    the shared checks build for every cloud (``aws.permission_probing``).

    The checks name their rules where they raise them, with no table of rules; reading the
    names from the checks' compiled code keeps this list whole as checks are added."""
    import importlib

    rules: set[str] = set()
    shared: set[str] = set()
    for module_name in ("detector.techniques", *(f"detector.techniques.{m}"
                                                 for m in TECHNIQUE_MODULES)):
        module = importlib.import_module(module_name)
        for text in _module_strings(module):
            if _RULE_NAME.fullmatch(text):
                rules.add(text)
            elif module_name == "detector.techniques" and _RULE_SUFFIX.fullmatch(text):
                shared.add(text)
    rules.update(cloud + suffix for cloud in TECHNIQUE_MODULES for suffix in shared)
    return rules


def _module_strings(module: Any) -> Iterator[str]:
    """Every string constant of a module: in its globals (inside containers too) and in
    the code of its functions, nested functions included."""
    todo: list[Any] = list(vars(module).values())
    seen: set[int] = set()
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, tuple | list | set | frozenset):
            todo.extend(item)
        elif isinstance(item, types.FunctionType) and item.__module__ == module.__name__:
            todo.append(item.__code__)
        elif isinstance(item, types.CodeType):
            todo.extend(item.co_consts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--state", required=True, metavar="FILE", help="state snapshot written by replay")
    add("--out", metavar="FILE", help="write the updated snapshot here (default: in place)")
    add("--config", metavar="FILE", help="the configuration the snapshot was made with")
    add("--alerts", metavar="FILE", help="alerts as JSON lines, native or OCSF (with --alert-id)")
    add("--alert-id", action="append", default=[], metavar="ID",
        help="alert to mark as expected (repeatable)")
    add("--identity", metavar="KEY", help="mark one pair by hand: the identity key …")
    add("--detector", metavar="NAME", help="… the detector (e.g. novelty.action) …")
    add("--value", metavar="VALUE", help="… and the observed value (e.g. iam:CreateAccessKey)")


def run(args: argparse.Namespace) -> int:
    from detector.replay import snapshot_locked

    try:
        _check_out(args)
        marks = list(_wanted_marks(args))
        if not marks:
            raise ConfigError("nothing to mark: give --alerts with --alert-id, or "
                              "--identity, --detector and --value")
        # a replay saving to the same snapshot meanwhile would write its older state over
        # the marks: the snapshot lock a replay's --save-state takes is taken here too
        target = args.out or args.state
        with snapshot_locked(target, "--out" if args.out else "--state"):
            detector = _load_detector(args)
            applied = apply_marks(detector, marks)
            _write_state(Path(target), detector.export_state())
    except NhiError as err:
        print(f"nhi-detector feedback: {err}", file=sys.stderr)
        return 2
    for identity, detector_name, value, outcome in applied:
        status, why = outcome_line(detector_name, outcome)
        print(f"{status}: {identity} {detector_name} {value!r}" + (f" ({why})" if why else ""))
    return 0 if all(outcome is not None for *_, outcome in applied) else 1


# What the model of each family does with a pair it could not learn; the pair is still
# remembered, so a signal with that exact value is dropped from now on.
NOT_LEARNED = {
    "volume": "the volume baseline has no held-back run for this window, so it learns "
              "nothing now",
    "multivariate": "the multivariate model learns only from events, so it learns nothing "
                    "now",
    "dormancy": "the dormancy model learns only from events, so it learns nothing now",
    "policy": "a policy rule has no baseline to learn",
}
LEARNED = {
    "volume": "the volume baseline accepted the level it was holding back",
    "schedule": "the schedule baseline learned this hour",
}
WINDOW_VALUE = ("volume", "multivariate")  # their value is a time window


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def check_value(detector: str, value: str) -> None:
    """A value the detector cannot have is refused (``ConfigError``): ``volume.daily``
    names a UTC day, ``YYYY-MM-DD``; '99999-99-99' was "recorded" and matched nothing."""
    if detector == "volume.daily":
        try:  # strptime alone takes 2024-1-5 and full-width digits, which match no signal
            if not _DAY.fullmatch(value):
                raise ValueError(value)
            datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            raise ConfigError(f"--value {value!r}: volume.daily values are the alert's UTC "
                              "day, YYYY-MM-DD (its signal's value)") from None


def outcome_line(detector: str, outcome: bool | None) -> tuple[str, str]:
    """What feedback did with one (detector, value) pair, in words that are true for the
    detector's family: learned by the baseline, or only recorded (``mark_expected_outcome``).
    Returns the status and the explanation."""
    if outcome is None:
        return "identity not in snapshot, skipped", ""
    family = detector.partition(".")[0]
    later = ("a signal for this same window is suppressed if it comes again; later windows "
             "are judged as before" if family in WINDOW_VALUE
             else "future signals with this value are suppressed")
    if outcome:
        done = LEARNED.get(family, "the baseline learned the value")
        return "marked expected", f"{done}; {later}"
    reason = NOT_LEARNED.get(family, "no model could learn this value")
    return "recorded, not learned", f"{reason}; {later}"


def _check_out(args: argparse.Namespace) -> None:
    """``--out`` naming the alerts or configuration file would replace it by a snapshot."""
    from detector.replay import file_key

    out = file_key(args.out)
    for option in ("alerts", "config"):
        path = getattr(args, option)
        if out is not None and path and file_key(path) == out:
            raise ConfigError(f"--out {args.out} is the same file as --{option} {path}: "
                              "writing it would destroy it; name another file")


def apply_marks(detector: Any, marks: Iterable[tuple[str, str, str]]) -> list[tuple]:
    """Mark each (identity, detector, value); returns each with its outcome: None when the
    identity is not in the snapshot, else whether a model learned it."""
    return [(i, d, v, detector.mark_expected_outcome(i, d, v)) for i, d, v in marks]


def marks_from_alert(native: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The (identity, detector, value) pairs of one native alert's signals.

    Raises ``ValueError`` naming the field when the alert is not shaped like a native
    alert (a hand-edited line, an OCSF document): a wrong-typed value would otherwise be
    stored in the snapshot and never match anything.
    """
    identity = native.get("identity")
    key = identity.get("key") if isinstance(identity, dict) else None
    if not isinstance(key, str) or not key:
        raise ValueError("identity.key is not an identity key")
    evidence = native.get("evidence")
    pairs = evidence.get("signal_values") if isinstance(evidence, dict) else None
    if not pairs:
        pairs = native.get("signals") or []
    if not isinstance(pairs, list):
        raise ValueError("evidence.signal_values is not a list")
    marks: list[tuple[str, str, str]] = []
    for index, pair in enumerate(pairs):
        detector = pair.get("detector") if isinstance(pair, dict) else None
        value = pair.get("value") if isinstance(pair, dict) else None
        if not isinstance(detector, str) or not isinstance(value, str):
            raise ValueError(f"signal {index} has no text 'detector' and 'value'")
        mark = (key, detector, value)
        if mark not in marks:
            marks.append(mark)
    return marks


def _wanted_marks(args: argparse.Namespace) -> Iterator[tuple[str, str, str]]:
    for option in ("identity", "detector", "value", "alert_id"):
        for text in _as_list(getattr(args, option)):
            if not _is_utf8(text):
                raise ConfigError(f"--{option.replace('_', '-')} {text!r} is not valid UTF-8")
    if args.identity or args.detector or args.value is not None:
        if not (args.identity and args.detector and args.value is not None):
            raise ConfigError("--identity, --detector and --value go together")
        check_detector(args.detector, known_detectors(_config(args)))
        check_value(args.detector, args.value)
        yield args.identity, args.detector, args.value
    if args.alert_id:
        if not args.alerts:
            raise ConfigError("--alert-id needs --alerts FILE (JSON lines, native or OCSF)")
        found = find_alerts(args.alerts, set(args.alert_id))
        missing = sorted(set(args.alert_id) - set(found))
        if missing:
            raise ConfigError(f"alert id(s) {missing} not found in {args.alerts}")
        for marks in found.values():
            yield from marks


def check_detector(name: str, known: frozenset[str]) -> None:
    """``ConfigError`` for a name no signal carries, listing the names that are known (the
    technique rules counted, not listed: there are many, all ``technique.<cloud>.*``).
    A ``sweep.*`` name is refused too: a sweep alert is keyed by its source, not by an
    identity, so an identity's expected value would never meet it."""
    if name.startswith("sweep."):
        raise ConfigError(f"--detector {name!r}: sweeps have no per-identity feedback (a "
                          "sweep is one source acting as many identities); silence a known "
                          "source with sweeps.known_sources or a suppression rule")
    if name in known:
        return
    from detector.config import did_you_mean

    plain = sorted(n for n in known if not n.startswith("technique."))
    techniques = sum(1 for n in known if n.startswith("technique."))
    hint = did_you_mean(name, sorted(known))
    raise ConfigError(f"--detector {name!r} is not a detector name{hint} Known: "
                      f"{', '.join(plain)}, and {techniques} technique.<rule> names "
                      "(technique.aws.*, technique.azure.*, technique.gcp.*, technique.k8s.*; "
                      "an alert's signals name them)")


def _config(args: argparse.Namespace) -> dict[str, Any]:
    from detector.config import load_config

    return load_config(args.config)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _is_utf8(text: str) -> bool:
    """False for an argument holding bytes that are not UTF-8 (kept by Python as lone
    surrogates): the snapshot could not store it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def find_alerts(path: str, ids: set[str]) -> dict[str, list[tuple[str, str, str]]]:
    """The marks of the latest revision of each wanted alert in a native JSON-lines file.

    A wanted line that is not a native alert raises ``InputError`` naming the line.
    """
    found: dict[str, tuple[int, list[tuple[str, str, str]]]] = {}
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
            if isinstance(native, dict) and native.get("class_uid") == OCSF_CLASS_UID:
                native = native_from_ocsf(native, path, number)
            alert_id = native.get("alert_id") if isinstance(native, dict) else None
            if not isinstance(alert_id, str) or alert_id not in ids:
                continue
            revision = native.get("revision")
            try:
                if isinstance(revision, bool) or not isinstance(revision, int):
                    raise ValueError(f"revision {revision!r} is not a whole number")
                marks = marks_from_alert(native)
            except ValueError as err:
                raise InputError("invalid_record", f"alert {alert_id} is not a native alert: "
                                 f"{err}", origin=f"{path}:{number}") from err
            if alert_id not in found or revision >= found[alert_id][0]:
                found[alert_id] = (revision, marks)
    return {alert_id: marks for alert_id, (_, marks) in found.items()}


def native_from_ocsf(doc: dict[str, Any], path: str, number: int) -> dict[str, Any]:
    """The fields feedback reads, from an OCSF Detection Finding written by this detector:
    the id in ``finding_info.uid``, the revision in ``metadata.uid`` (``<id>-r<revision>``),
    the identity in ``actor.user.uid`` and the pairs in ``unmapped.nhi_signal_values``.

    An OCSF file written before the pairs were exported cannot say what to mark: it is
    refused (``InputError``) with what to pass instead."""
    info = doc.get("finding_info") if isinstance(doc.get("finding_info"), dict) else {}
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    unmapped = doc.get("unmapped") if isinstance(doc.get("unmapped"), dict) else {}
    actor = doc.get("actor") if isinstance(doc.get("actor"), dict) else {}
    user = actor.get("user") if isinstance(actor.get("user"), dict) else {}
    alert_id = info.get("uid")
    head, _, revision = str(meta.get("uid") or "").rpartition("-r")
    pairs = unmapped.get("nhi_signal_values")
    if not isinstance(alert_id, str) or head != alert_id or not (
            revision.isascii() and revision.isdigit() and len(revision) <= 9) or pairs is None:
        raise InputError(
            "invalid_record", f"{path} is an OCSF file without the signal values feedback "
            "marks (written by an older nhi-detector or another product): pass the native "
            "alerts file (replay --alerts without --format ocsf), or mark one pair with "
            "--identity, --detector and --value", origin=f"{path}:{number}")
    return {
        "alert_id": alert_id,
        "revision": int(revision),
        "identity": {"key": user.get("uid")},
        "evidence": {"signal_values": pairs},
    }


def _load_detector(args: argparse.Namespace) -> Any:
    from detector.config import load_config
    from detector.engine import Detector
    from detector.replay import load_state_file
    from detector.stats import RunStats

    detector = Detector(load_config(args.config), stats=RunStats())
    load_state_file(detector, args.state)
    return detector


def _write_state(path: Path, data: bytes) -> None:
    from detector.replay import write_atomic

    write_atomic(path, data)
