"""Shared fixtures. ``shared_dir`` points at ../shared (public real logs and edge cases);
tests that use it skip cleanly on a user's fresh clone where it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NHI_SHARED_DIR", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (public real logs and edge cases live there)")
    return SHARED


@pytest.fixture(scope="session")
def real_logs(shared_dir: Path) -> Path:
    path = shared_dir / "real_logs"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def edge_cases(shared_dir: Path) -> Path:
    path = shared_dir / "edge_cases"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path
