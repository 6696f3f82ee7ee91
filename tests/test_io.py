"""Atomic writes: whole files only, and the mode any new file gets under the process's umask."""

import os
import stat
import subprocess
import sys

import pytest

from noisevision.io import atomic_write_text


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
