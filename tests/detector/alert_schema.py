"""Validate native alerts against the committed JSON Schema; reusable by any test module.

    from tests.detector.alert_schema import assert_valid_alert
    assert_valid_alert(alert.to_native())
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    text = resources.files("detector").joinpath("schemas/alert.schema.json").read_text()
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def alert_errors(native: dict[str, Any]) -> list[str]:
    """Every schema violation of one native alert, as readable strings."""
    errors = sorted(_validator().iter_errors(native), key=lambda e: list(e.path))
    return [f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors]


def assert_valid_alert(native: dict[str, Any]) -> None:
    """Fail with every violation listed when ``native`` does not match the schema."""
    errors = alert_errors(native)
    assert not errors, "alert does not match alert.schema.json:\n" + "\n".join(errors)
    # The native form must also survive a JSON round trip unchanged (what sinks write).
    assert json.loads(json.dumps(native)) == native
