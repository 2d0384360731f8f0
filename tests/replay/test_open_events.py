"""The replay's file listing: each file examined once, read once, whatever way it is named."""

from __future__ import annotations

import os
from pathlib import Path

from detector.replay import once_each, open_events
from detector.sources import ListDeadLetters, Parser, iter_files, read_paths
from detector.stats import RunStats
from tests.replay import logs


def _logs(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    root = tmp_path / "logs"
    counts = logs.build_logs(root, days=2)
    return root, counts


def test_iter_files_hands_over_the_stat_of_each_file_it_yields(tmp_path: Path) -> None:
    root, _ = _logs(tmp_path)
    (root / "notes.txt").write_text("not a log")
    found: dict[str, os.stat_result] = {}
    parser = Parser(stats=RunStats(), dead_letters=ListDeadLetters())
    files = list(iter_files([str(root), str(root / "k8s" / "audit.log")], parser, found))
    assert sorted(found) == sorted(set(files))
    assert str(root / "notes.txt") not in found
    for path in files:
        assert (found[path].st_dev, found[path].st_ino) == (os.stat(path).st_dev,
                                                            os.stat(path).st_ino)


def test_once_each_uses_known_stats_and_still_drops_a_file_met_again(tmp_path: Path) -> None:
    root, _ = _logs(tmp_path)
    audit = str(root / "k8s" / "audit.log")
    alias = str(tmp_path / "alias.log")
    os.symlink(audit, alias)
    known = {audit: os.stat(audit)}
    assert list(once_each([audit, alias, audit, "-"], known)) == [audit, "-"]
    assert known == {}  # each stat is used once and let go


def test_open_events_reads_a_file_named_twice_once(tmp_path: Path) -> None:
    root, counts = _logs(tmp_path)
    stats = RunStats()
    dead = ListDeadLetters()
    paths = [str(root), str(root / "k8s" / "audit.log"), str(root / "k8s" / ".." / "k8s")]
    events = list(open_events(paths, None, stats, dead, None))
    assert stats.records_read["aws.cloudtrail"] == counts["aws.cloudtrail"]
    assert stats.records_read["k8s.audit"] == counts["k8s.audit"]
    assert stats.balanced()
    assert len(events) == sum(stats.events.values())
    assert dead.items == []


def test_read_paths_of_listed_files_equals_read_paths_of_the_directory(tmp_path: Path) -> None:
    root, _ = _logs(tmp_path)
    parser = Parser(stats=RunStats(), dead_letters=ListDeadLetters())
    files = list(iter_files([str(root)], parser))
    walked, listed = RunStats(), RunStats()
    by_walk = list(read_paths([str(root)], stats=walked, dead_letters=ListDeadLetters()))
    by_list = list(read_paths(files, stats=listed, dead_letters=ListDeadLetters(), listed=True))
    assert [e.to_dict() for e in by_list] == [e.to_dict() for e in by_walk]
    assert listed == walked
    assert len(by_list) > 100
