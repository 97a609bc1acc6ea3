"""One writer per folder: a live holder blocks at once with its name; a dead one is taken over."""

import json
import subprocess
import sys

import pytest

from liverwild.locking import (
    LOCK_NAME,
    TAKING_SECONDS,
    LockedError,
    acquire,
    folder_lock,
    held_by_others,
    refuse_other_writers,
    release,
)


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def plant(folder, pid, command="lw_train loo_X"):
    import socket

    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_NAME).write_text(
        json.dumps({"pid": pid, "host": socket.gethostname(), "command": command, "since": "2026-01-01 00:00:00"})
    )


def test_live_holder_blocks_with_its_name(tmp_path, live_pid):
    plant(tmp_path, live_pid)
    with pytest.raises(LockedError) as info:
        acquire(tmp_path, "lw_train loo_X")
    message = str(info.value)
    assert str(live_pid) in message and LOCK_NAME in message and "lw_train loo_X" in message
    assert json.loads((tmp_path / LOCK_NAME).read_text(encoding="utf-8"))["pid"] == live_pid  # untouched


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, caplog):
    pid = dead_pid()
    plant(tmp_path, pid)
    with folder_lock(tmp_path, "lw_predict") as path:
        import os

        assert json.loads(path.read_text(encoding="utf-8"))["pid"] == os.getpid()
        assert f"took over a stale lock of process {pid}" in caplog.text
    assert not (tmp_path / LOCK_NAME).exists()  # released


def test_a_lock_file_still_being_written_counts_as_held_then_as_stale(tmp_path, caplog):
    """Two commands started at the same moment: the second reads the first's lock file between its
    creation and the writing of its holder's name, and must not take it over (both would write)."""
    import os
    import time

    path = tmp_path / LOCK_NAME
    path.touch()  # created, its holder's name not written yet
    with pytest.raises(LockedError, match="another process is taking"):
        acquire(tmp_path, "lw_predict")
    assert path.read_bytes() == b""  # untouched
    own = acquire(tmp_path, "lw_predict", name=".lw.part0of2.lock")
    assert held_by_others(tmp_path, own) == [path]
    with pytest.raises(LockedError, match="another process is taking"):
        refuse_other_writers(tmp_path, own)  # a whole-folder run starting beside a part
    assert not own.exists()  # released on refusal
    old = time.time() - TAKING_SECONDS - 5
    os.utime(path, (old, old))  # left empty by a process that died while taking it
    assert held_by_others(tmp_path) == []
    with folder_lock(tmp_path, "lw_predict") as taken:
        assert json.loads(taken.read_text(encoding="utf-8"))["pid"] == os.getpid()
    assert "took over a stale lock" in caplog.text


def test_lock_is_released_on_error_and_only_by_its_owner(tmp_path, live_pid):
    with pytest.raises(RuntimeError):
        with folder_lock(tmp_path):
            raise RuntimeError("boom")
    assert not (tmp_path / LOCK_NAME).exists()
    plant(tmp_path, live_pid)
    release(tmp_path / LOCK_NAME)  # not ours: kept
    assert (tmp_path / LOCK_NAME).exists()


def test_second_plan_and_preprocess_on_the_same_dataset_fails_at_once(tmp_path, live_pid):
    from liverwild.phantoms import write_phantoms
    from preprocessing.pipeline import plan_and_preprocess

    write_phantoms(tmp_path / "raw", ["PhantomT2MR"], 2, 0, 0.3, 4, workers=1, progress=False)
    plant(tmp_path / "pre" / "PhantomT2MR", live_pid, "lw_plan_and_preprocess -d PhantomT2MR")
    with pytest.raises(LockedError, match=f"process {live_pid}"):
        plan_and_preprocess(
            ["PhantomT2MR"],
            raw=str(tmp_path / "raw"),
            preprocessed=str(tmp_path / "pre"),
            random_backbone=True,
            backbone="vit_tiny_patch16_224",
            views=0,
            workers=0,
            progress=False,
        )
    assert not (tmp_path / "pre" / "PhantomT2MR" / "plans.json").exists()  # nothing written
