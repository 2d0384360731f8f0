"""Loading the YAML configuration file.

One file, several sections; each component owns its section and turns it into its own
frozen settings object (``IdentityRules.from_config``, ``ModelSettings.from_config``,
``ScoringSettings.from_config`` …). This module only reads the file and checks that the
top-level keys are known, so a typo fails loudly instead of being ignored; it reports every
mistake of the file at once (``config_problems``).

Sections: ``identities`` (kind overrides, owners, peer tags, AI-agent patterns),
``models`` (learning period, horizons, caps), ``scoring`` (thresholds, weights, cooldowns),
``suppressions`` (inline rules; a separate file may be given too), ``sweeps`` (one source
acting as many identities, ``detector.sweeps.SweepSettings``), ``worker`` (the
streaming worker's settings, see ``streams.settings``). Where alerts, dead letters and
reports go is given on the command line, not here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from detector.errors import ConfigError

KNOWN_SECTIONS = frozenset({"identities", "models", "scoring", "suppressions", "sweeps",
                            "worker"})
MAPPING_SECTIONS = ("identities", "models", "scoring", "sweeps", "worker")


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that keeps an impossible date (``2026-02-30``, hour 25) as its
    text instead of failing the whole file, so the key that holds it can be named."""


def _timestamp(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError):
        return loader.construct_scalar(node)


ConfigLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)

# PyYAML follows YAML 1.1, where a float needs a point and a signed exponent: ``1e9`` and
# ``1.0e9`` were read as text and refused as "must be a number, got '1e9'". YAML 1.2 (and
# JSON) read them as numbers, as the person who wrote them meant; a whole number without
# exponent stays an integer.
ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


# Whole numbers as YAML 1.2 reads them: PyYAML's 1.1 rules read ``050`` as octal (40) and
# ``1:30`` as base 60 (90), so a setting written with a leading zero or a time-like value
# was silently another number. Now ``050`` is 50, ``0o17`` and ``0x1f`` keep their bases,
# and ``1:30`` is text, which a numeric setting refuses with its name.
_INT_TAG = "tag:yaml.org,2002:int"
ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _INT_TAG]
    for first, resolvers in ConfigLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver(
    _INT_TAG, re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)


def _int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


ConfigLoader.add_constructor(_INT_TAG, _int)


MAX_SETTINGS_FILE_BYTES = 64 * 1024 * 1024
"""The largest config, suppression or labels file read (64 MiB; a large ownership map is
a few MiB). These files are read whole: without a bound, ``--config /dev/zero`` or a log
given by mistake ended in a MemoryError traceback instead of one line."""


def read_settings_file(path: str | Path, what: str) -> bytes:
    """The bytes of a settings file (config, suppressions, labels), read whole up to
    ``MAX_SETTINGS_FILE_BYTES``; a ``ConfigError`` naming the file otherwise."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SETTINGS_FILE_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"cannot read {what} {path}: {err.strerror}") from err
    if len(data) > MAX_SETTINGS_FILE_BYTES:
        raise ConfigError(f"{what} {path} is larger than "
                          f"{MAX_SETTINGS_FILE_BYTES // 2**20} MiB: is it the right file?")
    return data


def read_yaml(path: str | Path, what: str) -> Any:
    """Parse one YAML file; every failure is a ``ConfigError`` that names the file."""
    data = read_settings_file(path, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{what} {path} is not UTF-8 text (byte {err.start}: {err.reason})"
        ) from err
    try:
        loader = ConfigLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            duplicate = _duplicate_key(node, "")
            if duplicate:
                raise ConfigError(f"{what} {path}: {duplicate}")
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} {path} is not valid YAML: {yaml_problem(err)}") from err
    except RecursionError as err:
        raise ConfigError(f"{what} {path} is nested too deeply to read") from err
    except (ValueError, TypeError, OverflowError) as err:
        raise ConfigError(f"{what} {path} is not valid YAML: {err}") from err


def _duplicate_key(node: yaml.Node, where: str) -> str | None:
    """The first key given twice in one mapping, anywhere in the document, as a message.

    YAML's loaders keep the last of two equal keys: a second ``scoring:`` section would
    silently replace the first, whichever of the two the writer meant. Keys are compared
    as their text; a merge key (``<<``) may repeat."""
    stack = [(node, where)]
    seen_nodes: set[int] = set()
    while stack:
        current, path = stack.pop()
        if id(current) in seen_nodes:  # an alias repeats a node; look at it once
            continue
        seen_nodes.add(id(current))
        if isinstance(current, yaml.MappingNode):
            first: dict[str, yaml.Node] = {}
            for key_node, value_node in current.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
                if key is not None and key != "<<":
                    name = f"{path}.{key}" if path else key
                    if key in first:
                        return (f"key '{name}' is given twice (lines "
                                f"{first[key].start_mark.line + 1} and "
                                f"{key_node.start_mark.line + 1}); give it once, with "
                                "everything under it, as only one can be used")
                    first[key] = key_node
                    stack.append((value_node, name))
                else:
                    stack.append((value_node, path))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((item, f"{path}[{n}]") for n, item in enumerate(current.value))
    return None


def yaml_problem(err: yaml.YAMLError) -> str:
    """One line for a YAML error: where (line and column, counted from 1) and what.

    PyYAML's own text spans several lines with the source quoted and a caret under it,
    and names the input ``"<unicode string>"`` (the file is read first, then parsed); a
    message meant for one log line says the same in words. The context (``while parsing
    a flow sequence``) is kept with its own position when it has one."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        text = f"line {mark.line + 1}, column {mark.column + 1}: {_one_line(err.problem)}"
        context = err.context_mark
        if err.context and context is not None and (context.line, context.column) != (
                mark.line, mark.column):
            text += (f" ({_one_line(err.context)} started at line {context.line + 1}, "
                     f"column {context.column + 1})")
        elif err.context:
            text += f" ({_one_line(err.context)})"
        return text
    if isinstance(err, yaml.reader.ReaderError):
        return (f"character {err.position + 1}: unacceptable character "
                f"#x{err.character:04x}: {err.reason}") if isinstance(err.character, int) \
            else f"character {err.position + 1}: {err.reason}"
    return _one_line(str(err).replace(' in "<unicode string>"', ""))


def _one_line(text: str | None) -> str:
    return " ".join(str(text or "").split())


def load_config(path: str | Path | None) -> dict[str, Any]:
    """Read a YAML config file into a dict of sections; ``None`` gives an empty config.

    Every section is validated here, once (types and ranges of every setting), so a bad
    value stops the run before any data is read; messages name the file, section and key.
    Every mistake of the file is reported in one ``ConfigError``, one per line.
    """
    if path is None:
        return {}
    path = Path(path)
    data = read_yaml(path, "config file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping of sections")
    problems = config_problems(data)
    if len(problems) == 1:
        raise ConfigError(f"config file {path}: {problems[0]}")
    if problems:
        raise ConfigError(f"config file {path}: {len(problems)} mistakes:\n"
                          + "\n".join(f"  - {problem}" for problem in problems))
    return data


FAILED = object()  # what a check of ``config_problems`` gives back when it found a mistake


def config_problems(data: dict[str, Any]) -> list[str]:
    """Every mistake of a config, each as one message, in the order of the sections.

    A trial's file with twelve mistakes took twelve runs to fix when the first one stopped
    the check. Each section is checked on its own; when ``models``, ``scoring`` or ``sweeps``
    fails as a whole, all its unknown keys are named together and each known key is
    checked alone (against the defaults), then, when every key passed, all together
    (thresholds that must rise): see ``_key_by_key``."""
    import time

    from detector.identity import IdentityRules
    from detector.scoring import ScoringSettings
    from detector.suppression import SuppressionRules, parse_rule
    from detector.sweeps import SweepSettings
    from models.settings import ModelSettings
    from streams.settings import check_section_keys  # the worker's own check, no Faust

    problems: list[str] = []

    def check(build: Any, *args: Any) -> Any:
        try:
            return build(*args)
        except ConfigError as err:
            problems.append(str(err))
            return FAILED

    unknown = sorted(str(key) for key in set(data) - KNOWN_SECTIONS)
    if unknown:
        problems.append(f"unknown section(s) {unknown}; known: "
                        f"{', '.join(sorted(KNOWN_SECTIONS))}")
    bad = set()
    for name in MAPPING_SECTIONS:
        section = data.get(name)
        if section is not None and not isinstance(section, dict):
            problems.append(f"section '{name}' must be a mapping, got {type(section).__name__}")
            bad.add(name)
    identities = data.get("identities") if "identities" not in bad else None
    for key, value in (identities or {}).items():  # kinds, owners, ai_agents: each alone
        if check(_check_rule_lists, {key: value}) is not FAILED:
            check(IdentityRules.from_config, {key: value})
    if "models" not in bad:
        _key_by_key(check, ModelSettings.from_config, data.get("models") or {},
                    set(ModelSettings.__dataclass_fields__))
    # the detector names depend on the scoring section (its policy rules and catalogue):
    # the patterns are checked against the keys that passed
    scoring = {} if "scoring" in bad else _key_by_key(
        check, ScoringSettings.from_config, data.get("scoring") or {},
        set(ScoringSettings.__dataclass_fields__))
    if "sweeps" not in bad:
        _key_by_key(check, SweepSettings.from_config, data.get("sweeps") or {},
                    set(SweepSettings.__dataclass_fields__))
    sound = {**data, "scoring": scoring}
    check(_check_detector_patterns, sound)
    rules = data.get("suppressions")
    if isinstance(rules, list):  # each rule on its own
        parsed = [check(parse_rule, item, f"suppressions[{n}]") for n, item in enumerate(rules)]
        loaded = SuppressionRules([r for r in parsed if r is not FAILED], clock=time.time)
    else:
        loaded = check(lambda: SuppressionRules.from_config(rules, clock=time.time))
    if loaded is not FAILED:
        check(loaded.check_detectors, sound)
    if "worker" not in bad:
        check(check_section_keys, data.get("worker") or {})
    return problems


def _key_by_key(check: Callable[..., Any], build: Callable[[dict[str, Any]], Any],
                section: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """Check one section: the whole of it first; when that fails, its unknown keys in one
    message and its known keys together; when those fail, each known key alone, then (if
    every one passed) all of them together for the mistakes of a combination.

    Some keys are valid only together (``track_severity: high`` needs ``min_severity``
    high too), so a key that fails alone is judged again beside the keys that passed
    alone (when those agree among themselves), and its message is the one of that
    section. Returns the keys that passed (all of them when the whole section did, none
    when only the whole failed)."""
    if _passes(build, section):
        return section
    unknown = {key: value for key, value in section.items() if key not in known}
    if unknown:
        check(build, unknown)
    kept = {key: value for key, value in section.items() if key in known}
    if unknown and _passes(build, kept):
        return kept
    alone = {key: value for key, value in kept.items() if _passes(build, {key: value})}
    base = alone if _passes(build, alone) else {}
    passed = dict(alone)
    for key, value in kept.items():
        if key not in alone and check(build, {**base, key: value}) is not FAILED:
            passed[key] = value
    if len(passed) < len(kept):
        return passed
    return kept if check(build, kept) is not FAILED else {}


def _passes(build: Callable[[dict[str, Any]], Any], section: dict[str, Any]) -> bool:
    try:
        build(section)
    except ConfigError:
        return False
    return True


def _check_detector_patterns(data: dict[str, Any]) -> None:
    """Refuse a ``shadow_detectors`` or ``detector_weights`` pattern that matches no detector
    name: a misspelt one put nothing on trial or weighted nothing, without a word
    (suppression rules: ``SuppressionRules.check_detectors``)."""
    scoring = data.get("scoring") or {}
    weights = [str(p) for p in scoring.get("detector_weights") or {}]
    _refuse_sweep_weights(weights, data)
    patterns = [("scoring.shadow_detectors", p) for p in scoring.get("shadow_detectors") or ()]
    patterns += [("scoring.detector_weights", p) for p in weights]
    check_detector_patterns(patterns, data)


def _refuse_sweep_weights(patterns: list[str], data: dict[str, Any]) -> None:
    """Refuse a ``detector_weights`` pattern that matches only ``sweep.*`` detectors: a
    sweep alert is not a fusion of weighted signals, so the weight would change nothing
    (suppression rules silence a sweep; ``shadow_detectors`` puts it on trial)."""
    import fnmatch

    from detector.sweeps import DETECTORS

    sweeps = DETECTORS.values()
    touching = [p for p in patterns if any(fnmatch.fnmatchcase(n, p) for n in sweeps)]
    if not touching:
        return
    from detector.feedback import known_detectors

    others = [n for n in known_detectors(data) if n not in sweeps]
    refused = [p for p in touching if not any(fnmatch.fnmatchcase(n, p) for n in others)]
    if refused:
        raise ConfigError(
            f"scoring.detector_weights: {', '.join(map(repr, refused))} only matches sweep "
            "detectors, which have no weights (a sweep alert is not a sum of weighted "
            "signals); silence a sweep with a suppression rule, or put it on trial with "
            "shadow_detectors")


def check_detector_patterns(patterns: Iterable[tuple[str, Any]],
                            config: dict[str, Any] | None) -> None:
    """Refuse every ``(where, pattern)`` whose glob matches no detector name, with the
    closest names, in one ``ConfigError``. The names are those ``feedback --detector``
    checks against (``known_detectors``), which depend on the config's policy rules; they
    are only worked out when some pattern is not ``*``."""
    import fnmatch

    patterns = [(where, str(p)) for where, p in patterns if str(p) != "*"]
    if not patterns:
        return
    from detector.feedback import known_detectors

    known = sorted(known_detectors(config))
    unmatched = [f"{where}: {pattern!r} matches no detector name"
                 f"{did_you_mean(pattern, known + _family_globs(known))}"
                 for where, pattern in patterns
                 if not any(fnmatch.fnmatchcase(name, pattern) for name in known)]
    if unmatched:
        raise ConfigError(f"{'; '.join(unmatched)} (names: {_detector_families(known)}; an "
                          "alert's signals name them)")


def _family_globs(known: list[str]) -> list[str]:
    """``novelty.*``, ``technique.aws.*`` …: what a bare family name (``novelty``) was
    most likely meant as."""
    return sorted({name.rsplit(".", 1)[0] + ".*" for name in known if "." in name})


def check_known_keys(where: str, mapping: Any, known: Iterable[str]) -> None:
    """Refuse the first key of ``mapping`` not in ``known``: a misspelt key was ignored
    without a word, and a rule that lost its ``identity:`` applied to every identity."""
    names = sorted(known)
    for key in mapping:
        if key not in names:
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(str(key), names)} "
                              f"(known: {', '.join(names)})")


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """"; did you mean 'x'?" for up to three close names, "" when none is close."""
    close = difflib.get_close_matches(word, list(known), n=3, cutoff=0.75)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _detector_families(known: list[str]) -> str:
    """The detector names in short: each model and policy name, and technique rules by
    cloud (there are many)."""
    plain = [name for name in known if not name.startswith("technique.")]
    clouds = sorted({".".join(name.split(".")[:2]) for name in known
                     if name.startswith("technique.")})
    return ", ".join(plain + [f"{cloud}.*" for cloud in clouds])


# identities settings that are lists of rules, and the keys of one rule; each may also be
# written as a short mapping {GLOB: VALUE} (``detector.identity``)
RULE_LISTS = {"owners": ("match", "owner"), "kinds": ("match", "kind", "reason")}


def _check_rule_lists(section: dict[str, Any]) -> None:
    """Refuse one rule written as a mapping, where a list of rules was meant.

    ``owners: {match: "*", owner: team}`` (the list dash forgotten) reads as the short form
    {GLOB: VALUE}: two rules for identities literally named ``match`` and ``owner``, which
    match nothing, so no owner would be applied and nothing said. A short-form key equal
    to a rule key is that mistake."""
    for name, keys in RULE_LISTS.items():
        value = section.get(name)
        if isinstance(value, dict) and any(key in value for key in keys):
            raise ConfigError(
                f"identities.{name}: expected a list of rules, each starting with '- ' "
                f"('- {keys[0]}: GLOB' with '{keys[1]}: ...' under it), or the short form "
                f"{{GLOB: {keys[1].upper()}}}; got one mapping with the rule key(s) "
                f"{sorted(k for k in keys if k in value)} (is the list dash missing?)"
            )
