"""Local worker pools kept between calls (`gpic_lab.engine.pools`): taken, given back, never shared, dropped when
broken or idle; pack's second call finds its workers running and still writes where relative paths point."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import file_tree

from gpic_lab.engine import pools


@pytest.fixture(autouse=True)
def _no_kept_pools() -> Iterator[None]:
    pools.close_idle_pools()
    yield
    pools.close_idle_pools()


def _worker_pid(pool) -> int:
    return pool.submit(os.getpid).result(timeout=60)


def _gone(pid: int, within: float = 20.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":  # exited, not yet reaped
                return True
        except OSError:  # reaped
            return True
        time.sleep(0.05)
    return False


def test_a_pool_given_back_is_taken_again_with_its_workers_and_never_shared() -> None:
    pool, new = pools.take_pool(1)
    pid = _worker_pid(pool)
    other, other_new = pools.take_pool(1)  # taken while the first is held: a pool of its own
    assert new and other_new and other is not pool
    other.shutdown(wait=True)
    pools.give_back_pool(pool, 1)
    assert pools.idle_pools() == 1
    again, again_new = pools.take_pool(1)
    assert again is pool and not again_new and _worker_pid(again) == pid
    assert pools.idle_pools() == 0
    bigger, bigger_new = pools.take_pool(2)  # another size: not this one
    assert bigger is not pool and bigger_new
    bigger.shutdown(wait=True)
    again.shutdown(wait=True)


def test_an_idle_pool_shuts_down_after_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pools, "IDLE_S", 0.2)
    pool, _ = pools.take_pool(1)
    pid = _worker_pid(pool)
    pools.give_back_pool(pool, 1)
    assert _gone(pid), "the idle pool's worker still runs"
    assert pools.idle_pools() == 0
    assert pools.take_pool(1)[0] is not pool


def test_a_pool_whose_worker_died_while_idle_is_not_taken() -> None:
    pool, _ = pools.take_pool(1)
    pid = _worker_pid(pool)
    pools.give_back_pool(pool, 1)
    os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + 20
    while not getattr(pool, "_broken", False) and time.monotonic() < end:
        time.sleep(0.05)
    fresh, new = pools.take_pool(1)
    assert fresh is not pool and new
    assert fresh.submit(sum, [1, 2]).result(timeout=60) == 3
    fresh.shutdown(wait=True)


def test_packs_reuse_their_workers_and_write_where_relative_paths_point(sample_dir: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A kept worker started in another working directory: the second pack, called with relative paths from a new
    one, writes there, the same bytes as one process."""
    import shutil

    from gpic_lab.pack.packer import pack

    for d in ("a", "b"):
        for split in ("train", "val", "test"):
            shutil.copytree(sample_dir / split, tmp_path / d / "src" / split)
    monkeypatch.chdir(tmp_path / "a")
    pack(["src"], "out", 3, 2, 2, seed=1, workers=2)
    assert pools.idle_pools() == 1
    monkeypatch.chdir(tmp_path / "b")
    kept = pools._idle[2][0][0]
    second = pack(["src"], "out", 3, 2, 2, seed=1, workers=2)
    assert pools.idle_pools() == 1 and pools._idle[2][0][0] is kept
    one = pack(["src"], "one", 3, 2, 2, seed=1)
    assert second == one
    reference = file_tree(tmp_path / "b" / "one")
    assert len([f for f in reference if f.endswith(".tar")]) == 5  # 3 train + val + test
    assert file_tree(tmp_path / "b" / "out") == reference == file_tree(tmp_path / "a" / "out")



def test_a_failed_pack_does_not_keep_its_workers(sample_dir: Path, tmp_path: Path) -> None:
    from gpic_lab.errors import UsageError
    from gpic_lab.pack.packer import pack

    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("not a pack's")
    with pytest.raises(UsageError, match="not empty"):
        pack([str(sample_dir / "train")], out, 3, 2, 2, seed=1, workers=2)
    assert pools.idle_pools() == 0
    assert (out / "notes.txt").read_text() == "not a pack's" and not list(out.rglob("*.tar"))
