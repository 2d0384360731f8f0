"""Optional compiled build of the hot models (see docs/architecture.md, "Compiled build").

``pip install -e .`` (or ``pip install .``) compiles the modules of ``COMPILED`` with
Cython, using the types in their ``.pxd`` files beside the ``.py`` sources; the ``.py``
files stay the one source of truth and run unchanged without it. pip fetches Cython into
its isolated build environment (``pyproject.toml``'s build requirements) as it fetches
setuptools; when a C compiler is missing or fails (or Cython, in a build made with
``--no-build-isolation``), or ``NHI_PURE_PYTHON=1`` is set, the install goes on with pure
Python and says so in one line (``pip -v`` shows it; ``nhi-detector --version`` says which
build runs). A partial build is never kept: the compiled modules share their types, so either
all of them load or none does.
"""

from __future__ import annotations

import json
import os
import sys
import zlib

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = ("context", "table", "novelty", "volume", "profile", "dormancy", "schedule",
            "credential", "multivariate", "daily")
"""The modules that pay for compiling (the per-event loop of ``IdentityProfile.observe``);
the others run once per signal, window or blob and gain nothing worth the build time."""

RECORD = "_compiled.json"
"""Written beside the compiled modules: the CRC-32 of each one's ``.py`` and ``.pxd`` at
build time, so ``models`` loads a compiled module only while its sources are unchanged."""


def source_crc(name: str, root: str = ".") -> int:
    """CRC-32 of a compiled module's ``.py`` then ``.pxd`` (the same in ``models``)."""
    crc = 0
    for ext in (".py", ".pxd"):
        with open(os.path.join(root, "models", name + ext), "rb") as handle:
            crc = zlib.crc32(handle.read(), crc)
    return crc


BUILDING = any(command in sys.argv for command in (
    "build_ext", "build", "bdist_wheel", "editable_wheel", "develop", "install"))
"""Whether setuptools runs this file to build (pip also runs it for metadata, twice)."""


def say(message: str) -> None:
    """The one line a build prints about the compiled models (shown by ``pip -v``)."""
    if BUILDING:
        print(f"nhi-detector build: {message}", file=sys.stderr, flush=True)


def extensions() -> list:
    """The Cython extensions, or [] (with the reason said) for a pure Python install."""
    if os.environ.get("NHI_PURE_PYTHON") == "1":
        say("NHI_PURE_PYTHON=1: installing pure Python (no compiled models)")
        return []
    try:
        from Cython.Build import cythonize
        from setuptools import Extension
    except ImportError as err:
        say(f"Cython unavailable ({err}): installing pure Python (no compiled models)")
        return []
    # Every float operation must round exactly as the interpreter's does, so that scores,
    # baselines and saved states stay bit-for-bit those of the pure Python build: no
    # contraction of a * b + c into one fused rounding (FMA, the default on ARM), and
    # ``x ** 2`` through the C library's pow() as float.__pow__ does (GCC otherwise turns
    # pow(x, 2.0) into x * x, which differs in the last bit for some x: seen on replay_data).
    # -O1 and no debug info: as fast as the default -O3 -g on bench_models (within the
    # noise) for a third of the compile time, which every install pays.
    flags = ["-ffp-contract=off", "-fno-builtin-pow", "-O1", "-g0"]
    exts = [Extension(f"models.{name}", [f"models/{name}.py"], extra_compile_args=flags)
            for name in COMPILED]
    try:
        return cythonize(exts, quiet=True, nthreads=os.cpu_count() or 1, compiler_directives={
            "language_level": 3,
            # Types come from the .pxd files only; the .py annotations are for readers and
            # type checkers (``x: float`` must not turn an int into a C double here).
            "annotation_typing": False,
        })
    except Exception as err:  # a Cython error must not stop a pure Python install
        say(f"Cython failed ({err}): installing pure Python (no compiled models)")
        return []


class OptionalBuildExt(build_ext):
    """Build every extension or none: on any failure, remove what was built and go on
    with pure Python, saying why in one line."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.parallel:  # compile the modules side by side (the C files are large)
            self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        if not self.extensions:
            if self.inplace:  # a pure editable install: no module of an earlier build stays
                self._remove_built()
            return
        try:
            super().run()
        except Exception as err:
            self._give_up(err)
            return
        self._write_record()
        say("compiled models built (Cython): " + ", ".join(COMPILED))

    def _remove_built(self) -> None:
        paths = [self.get_ext_fullpath(f"models.{name}") for name in COMPILED]
        paths.append(os.path.join(os.path.dirname(paths[0]), RECORD))
        for path in paths:
            if os.path.exists(path):
                os.remove(path)

    def _give_up(self, err: Exception) -> None:
        self._remove_built()
        say(f"compiling failed ({type(err).__name__}: {err}); installing pure Python "
            "(no compiled models)")

    def _write_record(self) -> None:
        target = os.path.dirname(self.get_ext_fullpath(self.extensions[0].name))
        record = {name: source_crc(name) for name in COMPILED}
        with open(os.path.join(target, RECORD), "w", encoding="utf-8") as handle:
            json.dump(record, handle, sort_keys=True)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
