"""Find a ``helm`` binary, or build one with Go into a per-user cache.

Used by the chart tests and by developers (``python3 tools/helm.py`` prints the path).
Order: ``$NHI_HELM``; ``helm`` on ``PATH``; the cache (``go/bin`` under ``$NHI_CACHE_DIR``,
``$XDG_CACHE_HOME/nhi-detector`` or ``~/.cache/nhi-detector``) or ``~/go/bin``; else
``go install helm.sh/helm/v3/cmd/helm@HELM_VERSION`` with ``GOBIN`` pointing at the cache.
The first build downloads modules through the Go module proxy and takes a few minutes
(about 6 on a busy 2-core machine with empty Go caches); later calls are instant. ``None``
means neither helm nor Go is available.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

HELM_MODULE = "helm.sh/helm/v3/cmd/helm"
HELM_VERSION = "v3.19.0"
BUILD_TIMEOUT_S = 840  # under pytest's 900 s per-test timeout, which covers fixture setup


def cache_bin_dir() -> Path:
    """Where a built helm lives: ``<cache>/go/bin``, the cache shared with tools/kafka.

    ``<cache>`` is ``$NHI_CACHE_DIR``, else ``$XDG_CACHE_HOME/nhi-detector``, else
    ``~/.cache/nhi-detector``.
    """
    root = os.environ.get("NHI_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base) / "nhi-detector"
    return Path(root) / "go" / "bin"


def find_helm() -> Path | None:
    """An existing helm binary, without building anything."""
    explicit = os.environ.get("NHI_HELM")
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    on_path = shutil.which("helm")
    if on_path:
        return Path(on_path)
    for candidate in (cache_bin_dir() / "helm", Path.home() / "go" / "bin" / "helm"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_go() -> str | None:
    """``go`` on PATH, else the usual install locations (a shell profile may add them)."""
    found = shutil.which("go")
    if found:
        return found
    roots = [os.environ.get("GOROOT", ""), "/usr/local/go", "/usr/lib/go"]
    for root in filter(None, roots):
        candidate = Path(root) / "bin" / "go"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def build_helm(version: str = HELM_VERSION, *, timeout: float = BUILD_TIMEOUT_S) -> Path | None:
    """Build helm with ``go install`` into the cache; ``None`` when Go is not installed.

    A failing build raises ``RuntimeError`` carrying Go's output, so a broken toolchain or
    an unreachable module proxy is reported rather than mistaken for "no Go here".
    """
    go = find_go()
    if go is None:
        return None
    target = cache_bin_dir()
    target.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOBIN=str(target))
    log.info("building helm %s with %s into %s (first time only)", version, go, target)
    proc = subprocess.run(
        [go, "install", f"{HELM_MODULE}@{version}"],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"go install {HELM_MODULE}@{version} failed:\n{proc.stderr[-4000:]}")
    return target / "helm"


def ensure_helm() -> Path | None:
    """An existing helm, or a freshly built one; ``None`` when neither helm nor Go exists."""
    return find_helm() or build_helm()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = ensure_helm()
    if path is None:
        print("no helm on PATH and no Go toolchain to build it", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
