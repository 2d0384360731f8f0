"""Helpers shared by the source tests: a CloudTrail record and a balanced read of paths."""

from __future__ import annotations

from pathlib import Path

from detector.sources import ListDeadLetters, Parser, read_paths
from detector.stats import RunStats


def record(index: int = 0, **extra: object) -> dict:
    """A small CloudTrail record with event id ``id-<index>``; ``extra`` adds or replaces
    fields."""
    base = {"eventTime": "2024-03-04T10:00:00Z", "eventSource": "s3.amazonaws.com",
            "eventName": "ListBuckets", "eventID": f"id-{index}",
            "userIdentity": {"type": "IAMUser", "accountId": "123456789012",
                             "arn": "arn:aws:iam::123456789012:user/bot",
                             "accessKeyId": "AKIAEXAMPLE00000001"},
            "sourceIPAddress": "198.51.100.1", "userAgent": "aws-cli/2.0"}
    base.update(extra)
    return base


def read(paths: list[Path | str], parser: Parser | None = None
         ) -> tuple[list, RunStats, ListDeadLetters]:
    """Every event of ``paths`` (through ``parser`` when given), with the run's counters
    and dead letters; the counters must balance."""
    stats, dead = (parser.stats, parser.dead_letters) if parser else (RunStats(),
                                                                      ListDeadLetters())
    events = list(read_paths([str(p) for p in paths], stats=stats, dead_letters=dead,
                             parser=parser))
    assert stats.balanced()
    return events, stats, dead  # type: ignore[return-value]
