"""Loading the YAML configuration file.

One file, several sections; each component owns its section and turns it into its own
frozen settings object (``IdentityRules.from_config``, ``ModelSettings.from_config``,
``ScoringSettings.from_config`` …). This module only reads the file and checks that the
top-level keys are known, so a typo fails loudly instead of being ignored.

Sections: ``identities`` (kind overrides, owners, peer tags, AI-agent patterns),
``models`` (learning period, horizons, caps), ``scoring`` (thresholds, weights, cooldowns),
``suppressions`` (inline rules; a separate file may be given too), ``outputs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from detector.errors import ConfigError

KNOWN_SECTIONS = frozenset({"identities", "models", "scoring", "suppressions", "outputs", "worker"})


def load_config(path: str | Path | None) -> dict[str, Any]:
    """Read a YAML config file into a dict of sections; ``None`` gives an empty config."""
    if path is None:
        return {}
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping of sections")
    unknown = sorted(set(data) - KNOWN_SECTIONS)
    if unknown:
        known = ", ".join(sorted(KNOWN_SECTIONS))
        raise ConfigError(f"config file {path}: unknown section(s) {unknown}; known: {known}")
    return data
