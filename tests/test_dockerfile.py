"""The worker image's Dockerfile: its build stage gets every file the package build reads.

No Docker engine runs here, so the image is not built by the tests; what can go wrong
without one showing it is a file left out of the build context's COPY lines (the image
then installs without its compiled models, or not at all)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            stages.append([])
        elif stages and line.strip():
            stages[-1].append(line)
    return stages


def _copied(lines: list[str]) -> set[str]:
    return {name for line in lines if line.startswith("COPY ") and "--from" not in line
            for name in line.split()[1:-1]}


def test_build_stage_copies_what_the_package_build_reads() -> None:
    build, image = _stages()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {pattern.rstrip("*") for pattern in
                project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = _copied(build)
    assert {"pyproject.toml", "setup.py", project["project"]["readme"]} <= copied
    assert packages <= copied and all((ROOT / name).is_dir() for name in packages)
    assert any("pip wheel" in line for line in build)
    # the image installs the wheel built above, and refuses to be built without the
    # compiled models
    assert any(line.startswith("COPY --from=build /wheels") for line in image)
    assert "models: compiled" in "\n".join(image)


def test_image_check_matches_the_version_line_of_each_build(monkeypatch) -> None:
    import re

    import models
    from detector.cli import version_line

    image = "\n".join(_stages()[1])
    wanted = re.search(r'grep -q "([^"]+)"', image).group(1)
    monkeypatch.setattr(models, "BUILD", "compiled (Cython)")
    assert wanted in version_line()
    monkeypatch.setattr(models, "BUILD", "pure Python (NHI_PURE_PYTHON=1)")
    assert wanted not in version_line()
