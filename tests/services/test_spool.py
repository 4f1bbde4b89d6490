"""The durable spool's files: what is appended survives, a live writer's segment is never
taken from it, a dead writer's is, torn and corrupt lines end a segment, and it is bounded."""

from __future__ import annotations

import os
import stat

import pytest

from chatadmin.spool import Spool, SpoolFull


def test_appended_records_come_back_in_order_and_the_segment_goes(tmp_path):
    spool = Spool(tmp_path / "spool", 1 << 20)
    spool.append([{"n": 1}, {"n": 2}])
    spool.append([{"n": 3, "text": "é 🙂"}])
    files = list((tmp_path / "spool").iterdir())
    assert len(files) == 1 and files[0].suffix == ".open"
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
    segments = list(spool.claim())  # seals this process's own segment first
    assert len(segments) == 1
    assert [r["n"] for r in segments[0].records()] == [1, 2, 3]
    segments[0].done()
    assert spool.status()["segments"] == 0 and spool.size() == 0


def test_a_live_writers_segment_is_not_claimed_but_a_dead_ones_is(tmp_path):
    writer, replayer = Spool(tmp_path, 1 << 20), Spool(tmp_path, 1 << 20)
    writer.append([{"n": 1}])
    assert list(replayer.claim()) == []  # its writer holds the lock
    os.close(writer._fd)  # the writer dies without sealing (kill -9 leaves no lock either)
    writer._fd = None
    (segment,) = list(replayer.claim())
    assert [r["n"] for r in segment.records()] == [1]
    assert list(Spool(tmp_path, 1 << 20).claim()) == []  # held by this replayer now
    segment.release()  # the replayer dies mid-way: the segment is replayed again later
    (again,) = list(Spool(tmp_path, 1 << 20).claim())
    assert [r["n"] for r in again.records()] == [1]
    again.done()


def test_a_new_segment_is_never_seen_unlocked_by_a_replayer(tmp_path, monkeypatch):
    """Between creating its segment and locking it, a writer's segment must not be claimable:
    a replayer taking it there would delete the file the writer then appends to."""
    import fcntl

    import chatadmin.spool as spool_module

    writer, replayer = Spool(tmp_path, 1 << 20), Spool(tmp_path, 1 << 20)
    seen = []
    real = fcntl.flock

    def replay_in_between(fd, op):
        if not seen:  # the writer's own lock: a replayer runs just before it
            seen.append([p.name for p in tmp_path.iterdir()])
            seen.append(list(replayer.claim()))
            for taken in seen[-1]:
                taken.release()  # (what a replayer finishing an empty segment would do)
        return real(fd, op)

    monkeypatch.setattr(spool_module.fcntl, "flock", replay_in_between)
    writer.append([{"n": 1}])
    monkeypatch.setattr(spool_module.fcntl, "flock", real)
    assert seen[1] == [] and all(not n.startswith("seg-") for n in seen[0])
    os.close(writer._fd)  # the writer dies: its record is there to replay
    writer._fd = None
    (segment,) = list(replayer.claim())
    assert [r["n"] for r in segment.records()] == [1]


def test_a_torn_or_corrupt_line_ends_the_segment(tmp_path):
    spool = Spool(tmp_path, 1 << 20)
    spool.append([{"n": 1}, {"n": 2}])
    spool.seal()
    (path,) = tmp_path.iterdir()
    data = path.read_bytes()
    path.write_bytes(data + b'deadbeef {"n": 3')  # a crash in the middle of a write
    (segment,) = list(spool.claim())
    assert [r["n"] for r in segment.records()] == [1, 2]
    segment.release()
    lines = data.split(b"\n")
    path = next(tmp_path.iterdir())
    path.write_bytes(lines[0] + b"\n" + lines[1].replace(b'"n":2', b'"n":9') + b"\n")
    (segment,) = list(spool.claim())
    assert [r["n"] for r in segment.records()] == [1]  # a changed record is not believed
    segment.release()


def test_the_spool_is_bounded(tmp_path):
    spool = Spool(tmp_path, 4096)
    spool.append([{"blob": "x" * 1000}])
    with pytest.raises(SpoolFull):
        spool.append([{"blob": "x" * 4000}])
    assert len([r for s in spool.claim() for r in s.records()]) == 1
