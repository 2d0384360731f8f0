"""The ``nhi-detector`` command: one subcommand per harness.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their subcommand runs, so
``nhi-detector parse`` never pays for Faust or river imports.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import sys

from detector.errors import ConfigError, NhiError, StateError

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "parse": ("detector.parse_cmd", "print normalised events of audit-log files as JSON lines"),
    "replay": ("detector.replay", "run the whole detector over log files in event-time order"),
    "feedback": ("detector.feedback", "mark an alert as expected so its baseline learns it"),
    "worker": ("streams.worker", "run the streaming worker on Kafka (Faust)"),
    "produce": ("streams.produce", "send audit-log files into a Kafka topic"),
}


def version_line() -> str:
    """``nhi-detector 0.1.0, models: compiled (Cython)``: which build runs matters for speed
    (see docs/architecture.md, "Compiled build"), never for results."""
    import models

    try:
        version = importlib.metadata.version("nhi-detector")
    except importlib.metadata.PackageNotFoundError:
        version = "(not installed)"
    return f"nhi-detector {version}, models: {models.BUILD}"


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, str | None]:
    parser = argparse.ArgumentParser(
        prog="nhi-detector",
        description="Behavioural anomaly detection for machine identities in cloud audit logs.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("--version", action="store_true",
                        help="print the version and which build of the models runs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((arg for arg in argv if arg in SUBCOMMANDS), None)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        # ``nhi-detector worker -v`` as well as ``nhi-detector -v worker``: an operator adds
        # the flag at the end of the command line they already have. Its own dest, so the
        # two places add up instead of the subcommand's count replacing the other.
        sub_parser.add_argument("-v", "--verbose", action="count", default=0,
                                dest="verbose_after", help="more logging (-vv: debug)")
        if name == chosen:
            importlib.import_module(module_name).add_arguments(sub_parser)
    return parser, chosen


def parse_paths_anywhere(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parser.parse_args(argv)``, except that a command taking ``PATH...`` also takes paths
    after its options (``replay data/ --no-progress more/``), as a shell user writes them.

    argparse gives a ``nargs="+"`` positional one run of words only; the later words come
    back unrecognised and are added to ``paths`` here, in their order. Anything else left
    over (an unknown option) is still the usual usage error, exit 2.
    """
    args, extras = parser.parse_known_args(argv)
    if extras and isinstance(getattr(args, "paths", None), list):
        # after ``--``, every word is a path, a ``-dash.json`` too
        cut = extras.index("--") if "--" in extras else len(extras)
        head, tail = extras[:cut], extras[cut + 1:]
        rest = [word for word in head if word == "-" or not word.startswith("-")]
        if len(rest) == len(head):
            args.paths.extend(rest + tail)
            return args
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def configure_logging(verbosity: int) -> None:
    """Configure the root handler once; leave handlers installed by a host alone."""
    root = logging.getLogger()
    if root.handlers:
        return
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, chosen = build_parser(argv)
    args = parse_paths_anywhere(parser, argv)
    if args.version:
        print(version_line())  # one line, never wrapped as argparse's version text is
        return 0
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    configure_logging(args.verbose + args.verbose_after)
    module = importlib.import_module(SUBCOMMANDS[chosen or args.command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        # the commands report an interrupt they handle themselves; this one landed outside
        # (while starting, or while writing the last files), so say it, or exit 130 is silent
        print(f"nhi-detector {chosen or args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except NhiError as err:
        # every command reports its own errors; one that escapes is still a bad flag,
        # file or output, so it gets the same one line and exit code, not a traceback
        print(f"nhi-detector {chosen or args.command}: {err}", file=sys.stderr)
        return 2 if isinstance(err, (ConfigError, StateError)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
