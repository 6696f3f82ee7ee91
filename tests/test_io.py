"""Atomic writes: whole files only, and the mode any new file gets under the process's umask."""

import errno
import os
import stat
import subprocess
import sys

import pytest

from noisevision.errors import NoisevisionError
from noisevision.io import atomic_write_text, recorded_path, recorded_place


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_honour_the_umask(tmp_path, umask, mode):
    """mkstemp alone gives 0600 whatever the umask, which other users of a cluster cannot read."""
    path = tmp_path / "out.json"
    code = (
        f"import os; os.umask({umask:#o}); from noisevision.io import atomic_write_text; "
        f"atomic_write_text({str(path)!r}, 'x')"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "old")

    class Boom(Exception):
        pass

    from noisevision import io

    def fail(f):
        f.write(b"partial")
        raise Boom

    with pytest.raises(Boom):
        io._atomic(path, fail, durable=False)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]


def test_a_full_disk_names_the_file_and_how_to_go_on(tmp_path):
    from noisevision import io

    def full(f):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(
        NoisevisionError, match=r"no space left on the device for .*out.txt: free some space"
    ) as info:
        io._atomic(tmp_path / "out.txt", full, durable=False)
    assert "run the same command again" in str(info.value) and os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "path,base,recorded",
    [
        ("tree/imgs", "tree/run", "../imgs"),  # given relative: from the file's folder
        ("{tmp}/out/runs/a/encoder.pt", "{tmp}/out", "runs/a/encoder.pt"),  # inside the folder
        ("{tmp}/elsewhere/imgs", "{tmp}/out", "{tmp}/elsewhere/imgs"),  # the user's absolute path
    ],
)
def test_recorded_paths_never_spell_the_machine_path_of_a_relative_one(
    tmp_path, monkeypatch, path, base, recorded
):
    monkeypatch.chdir(tmp_path)
    path, base, recorded = (s.format(tmp=tmp_path) for s in (path, base, recorded))
    assert recorded_path(path, base) == recorded
    assert os.path.abspath(recorded_place(recorded, base)) == os.path.abspath(path)
