"""State snapshots: --save-state / --load-state round trip, and refusal of foreign snapshots."""

from __future__ import annotations

import struct
from pathlib import Path

import orjson
import pytest

from tests.replay import logs

N_IDENTITIES = len(logs.ROLES) + len(logs.SERVICE_ACCOUNTS)


replay = logs.run_replay


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> dict[str, Path]:
    """Five days of logs replayed once with --save-state; two later days to continue."""
    base = tmp_path_factory.mktemp("snap")
    first, later = base / "days0-4", base / "days5-6"
    logs.build_logs(first, first_day=0, days=5)
    logs.build_logs(later, first_day=5, days=2)
    state = base / "state.snap"
    code, summary = replay([first], base, "--save-state", str(state))
    assert code == 0 and state.stat().st_size > 0
    assert summary["identities"]["tracked"] == N_IDENTITIES
    assert summary["identities"]["in_learning"] == 0  # 5 days, 24-48 events a day each
    return {"state": state, "later": later, "base": base}


class TestSnapshots:
    def test_warm_start__known_identities_not_learning_again(self, snapshot, tmp_path):
        code, summary = replay([snapshot["later"]], tmp_path, "--load-state",
                               str(snapshot["state"]))
        assert code == 0
        assert summary["identities"]["tracked"] == N_IDENTITIES
        assert summary["identities"]["in_learning"] == 0

    def test_continuing_with_later_days__no_snapshot_warning(self, snapshot, tmp_path):
        code, summary = replay([snapshot["later"]], tmp_path, "--load-state",
                               str(snapshot["state"]))
        assert code == 0 and summary["snapshot_warning"] is None

    def test_replaying_the_snapshots_own_days__says_so(self, snapshot, tmp_path, caplog):
        """The first thing a user tries (load the state, replay the same data) used to
        give other detections without a word: every event was older than the snapshot."""
        first = snapshot["base"] / "days0-4"
        with caplog.at_level("WARNING"):
            code, summary = replay([first], tmp_path, "--load-state", str(snapshot["state"]))
        warning = summary["snapshot_warning"]
        total = summary["events"]["total"]
        assert code == 0 and warning is not None
        before = int(warning.split()[2].replace(",", ""))
        assert 0.9 * total < before < total  # all but the snapshot's last two hours
        assert f"of {total:,} events" in warning and "older than the loaded state" in warning
        assert warning in caplog.text

    def test_cold_start__the_same_days_are_all_learning(self, snapshot, tmp_path):
        code, summary = replay([snapshot["later"]], tmp_path)
        assert code == 0
        assert summary["identities"]["in_learning"] == N_IDENTITIES  # 2 days < 3 needed

    def test_save_after_load__round_trip_keeps_every_identity(self, snapshot, tmp_path):
        again = tmp_path / "again.snap"
        code, _ = replay([snapshot["later"]], tmp_path, "--load-state", str(snapshot["state"]),
                         "--save-state", str(again))
        assert code == 0
        code, summary = replay([snapshot["later"]], tmp_path / "x", "--load-state", str(again))
        assert code == 0 and summary["identities"]["tracked"] == N_IDENTITIES

    def test_summary_names_the_files_written(self, snapshot, tmp_path, capsys):
        again, inventory = tmp_path / "new" / "again.snap", tmp_path / "inv.jsonl"
        code, summary = replay([snapshot["later"]], tmp_path, "--load-state",
                               str(snapshot["state"]), "--save-state", str(again),
                               "--inventory", str(inventory))
        assert code == 0 and again.stat().st_size > 0  # its missing folder was made
        assert summary["written"] == {
            "alerts": str(tmp_path / "alerts.jsonl"), "state snapshot": str(again),
            "inventory": str(inventory), "summary JSON": str(tmp_path / "summary.json")}
        text = capsys.readouterr().out
        assert text.split("Files written\n", 1)[1].splitlines()[1] == f"  state snapshot  {again}"

    def test_other_format_version__refused_with_exit_2(self, snapshot, tmp_path, capsys):
        data = bytearray(snapshot["state"].read_bytes())
        magic_len = data.index(b"\x00") + 1  # the magic ends with a NUL byte
        (version,) = struct.unpack(">H", data[magic_len:magic_len + 2])
        data[magic_len:magic_len + 2] = struct.pack(">H", version + 1)
        foreign = tmp_path / "foreign.snap"
        foreign.write_bytes(bytes(data))
        code, summary = replay([snapshot["later"]], tmp_path, "--load-state", str(foreign))
        err = capsys.readouterr().err
        assert code == 2
        assert f"state snapshot {foreign} refused" in err
        assert f"version {version + 1} is not supported" in err
        assert summary == {}  # nothing was replayed on a misread baseline

    def test_not_a_snapshot__refused_with_exit_2(self, snapshot, tmp_path, capsys):
        bogus = tmp_path / "bogus.snap"
        bogus.write_bytes(b'{"version": 1, "identities": {}}')
        code, _ = replay([snapshot["later"]], tmp_path, "--load-state", str(bogus))
        assert code == 2
        assert "not an nhi-detector state snapshot" in capsys.readouterr().err

    def test_truncated_snapshot__refused_with_exit_2(self, snapshot, tmp_path, capsys):
        cut = tmp_path / "cut.snap"
        cut.write_bytes(snapshot["state"].read_bytes()[:-40])
        code, _ = replay([snapshot["later"]], tmp_path, "--load-state", str(cut))
        assert code == 2
        assert f"state snapshot {cut} refused" in capsys.readouterr().err

    @pytest.mark.parametrize("now", [1e300, -5.0])
    def test_header_time_out_of_range__refused_with_exit_2(self, snapshot, tmp_path, capsys,
                                                           now):
        # a crafted snapshot with a valid checksum and now 1e300 loaded, and the run ended
        # in an OverflowError traceback while writing its summary
        crafted = tmp_path / "crafted.snap"
        crafted.write_bytes(with_header(snapshot["state"].read_bytes(),
                                        lambda header: header.update(now=now)))
        code, _ = replay([snapshot["later"]], tmp_path, "--load-state", str(crafted))
        assert code == 2
        assert (f"snapshot header: now must be an event time from 1970 to 9999, got {now!r}"
                in capsys.readouterr().err)

    def test_missing_snapshot__exit_2(self, tmp_path, capsys):
        code, _ = replay([tmp_path], tmp_path, "--load-state", str(tmp_path / "none.snap"))
        assert code == 2
        assert "cannot read state snapshot" in capsys.readouterr().err


def without_settings_record(data: bytes) -> bytes:
    """The snapshot as a build that recorded no model settings wrote it: its header without
    ``models``, the checksum made again."""
    return with_header(data, lambda header: header.pop("models"))


def with_header(data: bytes, change) -> bytes:
    """The snapshot with ``change`` applied to its JSON header, the checksum made again."""
    import hashlib

    magic_len = data.index(b"\x00") + 1
    version, header_len = struct.unpack(">HI", data[magic_len:magic_len + 6])
    start = magic_len + 6
    header = orjson.loads(data[start:start + header_len])
    change(header)
    raw = orjson.dumps(header)
    body = (data[:magic_len] + struct.pack(">HI", version, len(raw)) + raw
            + data[start + header_len:-32])
    return body + hashlib.sha256(body).digest()


class TestSnapshotSettings:
    """A snapshot read under other model settings: refused where its baselines would mean
    something else, a warning where the new value only applies from now on (trial 9: a
    10-minute snapshot loaded silently under bucket_minutes 5)."""

    def run(self, snapshot, tmp_path, models: str, *extra: str) -> int:
        config = tmp_path / "other.yaml"
        config.write_text(f"models: {{{models}}}\n")
        code, _ = replay([snapshot["later"]], tmp_path, "--config", str(config), *extra)
        return code

    def test_other_bucket_and_seed__refused_naming_both(self, snapshot, tmp_path, capsys):
        code = self.run(snapshot, tmp_path, "bucket_minutes: 5, novelty_cap: 16, seed: 7",
                        "--load-state", str(snapshot["state"]))
        err = capsys.readouterr().err
        assert code == 2
        assert "snapshot was written with other model settings: models.bucket_minutes was " \
               "10.0 for the snapshot, is 5.0 now: its volume" in err
        assert "models.seed was 42 for the snapshot, is 7 now" in err
        assert "novelty_cap" not in err  # a harmless change is not a reason to refuse

    def test_other_cap__loaded_with_a_warning(self, snapshot, tmp_path, caplog):
        code = self.run(snapshot, tmp_path, "novelty_cap: 16, dormancy_days: 10",
                        "--load-state", str(snapshot["state"]))
        err = caplog.text
        assert code == 0
        assert "snapshot loaded although models.dormancy_days was 30.0 for the snapshot, is " \
               "10.0 now; the loaded baselines are kept" in err
        assert "models.novelty_cap was 48 for the snapshot, is 16 now" in err

    def test_same_settings__loaded_without_a_word(self, snapshot, tmp_path, caplog):
        code = self.run(snapshot, tmp_path, "bucket_minutes: 10",
                        "--load-state", str(snapshot["state"]))
        assert code == 0
        assert "snapshot" not in caplog.text

    def test_older_snapshot__says_once_that_it_cannot_be_checked(self, snapshot, tmp_path,
                                                                 caplog):
        old = tmp_path / "old.snap"
        old.write_bytes(without_settings_record(snapshot["state"].read_bytes()))
        code = self.run(snapshot, tmp_path, "bucket_minutes: 5", "--load-state", str(old))
        err = caplog.text
        assert code == 0
        assert err.count("snapshot records no model settings") == 1
