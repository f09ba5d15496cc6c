"""mail/commit.py on real files: answers wait for their batch's fsync, batches group the
writes that came while one was in flight, order is kept, a failed fsync sends nothing."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from mail.commit import SYNCFS_FROM, GroupCommit, fsync_paths

pytestmark = pytest.mark.timeout(30)


class Recorder:
    """fsync_paths, recording each batch; the first batch can be held in flight."""

    def __init__(self, hold_first: bool = False, fail: set[int] | None = None) -> None:
        self.batches: list[list[Path]] = []
        self.gate = threading.Event()
        self.in_flight = threading.Event()
        if not hold_first:
            self.gate.set()
        self.fail = fail or set()

    def __call__(self, paths: list[Path]) -> None:
        self.in_flight.set()
        self.gate.wait(10)
        self.batches.append(list(paths))
        if len(self.batches) - 1 in self.fail:
            raise OSError(5, "Input/output error")
        fsync_paths(paths)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_an_answer_leaves_only_after_its_file_was_synced(tmp_path: Path) -> None:
    async def main() -> None:
        sync = Recorder()
        commit = GroupCommit(sync)
        sent: list[str] = []
        path = write(tmp_path / "account.info", "binding")
        commit.written(path)
        assert commit.pending
        commit.after(lambda: sent.append("200 OK"))
        assert sent == []  # not before the fsync
        while commit.pending:
            await asyncio.sleep(0.005)
        assert sync.batches == [[path]]
        assert sent == ["200 OK"]
        assert commit.counters == {"batches": 1, "files_synced": 1}
        commit.after(lambda: sent.append("later"))  # nothing written since: at once
        assert sent == ["200 OK", "later"]

    asyncio.run(main())


def test_writes_during_a_batch_in_flight_share_the_next_one_and_answers_keep_order(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        sync = Recorder(hold_first=True)
        commit = GroupCommit(sync)
        sent: list[int] = []
        first = write(tmp_path / "a0.info", "0")
        commit.written(first)
        commit.after(lambda: sent.append(0))
        await asyncio.get_running_loop().run_in_executor(None, sync.in_flight.wait, 5)
        others = []
        for n in range(1, 51):  # 50 registrations while the first batch syncs
            path = write(tmp_path / f"a{n}.info", str(n))
            others.append(path)
            commit.written(path)
            commit.after(lambda n=n: sent.append(n))
        commit.after(lambda: sent.append(99))  # something that wrote nothing: waits too
        assert sent == []
        sync.gate.set()
        while commit.pending:
            await asyncio.sleep(0.005)
        assert sync.batches == [[first], others]  # two fsync rounds for 51 writes
        assert sent == [*range(51), 99]

    asyncio.run(main())


def test_a_failed_fsync_sends_none_of_its_answers_and_the_next_batch_goes_on(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        sync = Recorder(fail={0})
        commit = GroupCommit(sync)
        sent: list[str] = []
        commit.written(write(tmp_path / "a.info", "a"))
        commit.after(lambda: sent.append("a"))
        while commit.pending:
            await asyncio.sleep(0.005)
        assert sent == []
        assert commit.counters == {"batches_failed": 1, "answers_dropped": 1}
        commit.written(write(tmp_path / "b.info", "b"))
        commit.after(lambda: sent.append("b"))
        while commit.pending:
            await asyncio.sleep(0.005)
        assert sent == ["b"]

    asyncio.run(main())


def test_without_sync_nothing_waits(tmp_path: Path) -> None:
    sync = Recorder()
    commit = GroupCommit(sync, enabled=False)
    sent: list[str] = []
    commit.written(write(tmp_path / "a.info", "a"))
    assert not commit.pending
    commit.after(lambda: sent.append("200 OK"))
    assert sent == ["200 OK"]
    assert sync.batches == []


@pytest.mark.parametrize("batch", [1, SYNCFS_FROM + 1])  # fsync each, or one syncfs
def test_a_file_replaced_or_moved_before_its_fsync_is_skipped(tmp_path: Path, batch: int) -> None:
    kept = [write(tmp_path / f"kept{n}.info", "k") for n in range(batch)]
    fsync_paths([tmp_path / "gone" / "account.info", *kept])  # no FileNotFoundError
    with pytest.raises(NotADirectoryError):  # any other error is the batch's failure
        fsync_paths([kept[0] / "x"])
