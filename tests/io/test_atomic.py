"""Atomic outputs: a failed or unverifiable write leaves an existing file untouched and no partial file behind."""

import errno
import os
import subprocess
import sys

import numpy as np
import pytest

from pyramid_jax.errors import ArgumentError, OutputError
from pyramid_jax.io import atomic, video


def frames(count=3):
    return np.random.default_rng(0).integers(0, 255, (count, 16, 16, 3), dtype=np.uint8)


def test_a_writer_failing_halfway_leaves_the_old_file_and_no_partial(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"good")
    with pytest.raises(OutputError, match="out.bin .the existing file is untouched.*No space left"):
        with atomic.atomic_file(str(path)) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert path.read_bytes() == b"good" and os.listdir(tmp_path) == ["out.bin"]


def test_an_mp4_that_does_not_read_back_is_refused_and_the_old_one_kept(tmp_path, monkeypatch):
    path = str(tmp_path / "clip.mp4")
    video.save_frames(frames(), path)
    good = open(path, "rb").read()

    def truncated(frames, path, fps):  # a full disk: ffmpeg's output stops early
        with open(path, "wb") as f:
            f.write(good[:200])

    monkeypatch.setattr(video, "_write_mp4", truncated)
    with pytest.raises(OutputError, match="clip.mp4"):
        video.save_frames(frames(), path)
    assert open(path, "rb").read() == good and os.listdir(tmp_path) == ["clip.mp4"]


def test_mp4_png_and_frame_folders_are_written_whole(tmp_path):
    clip = frames(9)
    video.save_frames(clip, str(tmp_path / "a.mp4"))
    import imageio.v2 as imageio

    assert len(imageio.mimread(str(tmp_path / "a.mp4"))) == 9
    video.save_frames(clip, str(tmp_path / "frames"))
    assert sorted(os.listdir(tmp_path / "frames"))[-1] == "frame_00008.png"
    assert sorted(os.listdir(tmp_path)) == ["a.mp4", "frames"]


def test_output_paths_are_checked_before_any_work(tmp_path, monkeypatch):
    with pytest.raises(ArgumentError, match="unknown suffix '.avi'"):
        video.check_output_path(str(tmp_path / "x.avi"))
    with pytest.raises(ArgumentError, match="output is empty"):
        video.check_output_path("")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ArgumentError, match="is a file, not a folder"):
        video.check_output_path(str(tmp_path / "a_file" / "x.mp4"))
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(ArgumentError, match="is a folder"):
        video.check_output_path(str(tmp_path / "folder.mp4"))
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    if os.access(readonly, os.W_OK):  # root ignores permissions: fake the check instead
        monkeypatch.setattr(atomic.os, "access", lambda path, mode: False)
    with pytest.raises(ArgumentError, match="not writable"):
        video.check_output_path(str(readonly / "new" / "x.mp4"))
    monkeypatch.undo()
    if os.path.isdir("/proc"):  # a file system nobody writes to, root included
        with pytest.raises(ArgumentError, match="folder /proc is not writable"):
            video.check_output_path("/proc/x.mp4")
    video.check_output_path(str(tmp_path / "new" / "x.mp4"))  # missing folders are created when writing


def test_partials_of_a_killed_run_are_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / f".clip.png.partial-{pid}-abc.png").write_bytes(b"half")
    (tmp_path / f".model.partial-{pid}-xyz").mkdir()
    (tmp_path / f".other.png.partial-{os.getpid()}-live.png").write_bytes(b"a live writer's")
    video.save_frames(frames(), str(tmp_path / "clip.png"))
    with atomic.atomic_directory(str(tmp_path / "model")) as tmp:
        open(os.path.join(tmp, "config.json"), "w").close()
    assert sorted(os.listdir(tmp_path)) == [f".other.png.partial-{os.getpid()}-live.png", "clip.png", "model"]


def test_a_killed_swap_gets_the_old_folder_back(tmp_path):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    old = tmp_path / f".model.partial-{dead}-old-abc" / "x"
    old.mkdir(parents=True)
    (old / "config.json").write_text("{}")  # the killed run had moved model/ aside, not yet the new one in
    atomic.clean_stale_partials(str(tmp_path / "model"))
    assert os.listdir(tmp_path / "model") == ["config.json"]


def test_folders_follow_the_umask_and_a_failed_block_leaves_nothing(tmp_path):
    mask = os.umask(0o027)
    try:
        with atomic.atomic_directory(str(tmp_path / "converted")) as tmp:
            pass
    finally:
        os.umask(mask)
    assert (tmp_path / "converted").stat().st_mode & 0o777 == 0o750
    with pytest.raises(RuntimeError):
        with atomic.atomic_directory(str(tmp_path / "converted"), overwrite=True) as tmp:
            open(os.path.join(tmp, "half"), "w").close()
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == ["converted"] and os.listdir(tmp_path / "converted") == []
