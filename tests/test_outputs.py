"""Atomic outputs: nothing half-written, ordinary permissions."""

import os
import stat

import pytest

from facenormals3d.errors import OutputExistsError
from facenormals3d.outputs import atomic_write, staged_dir


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "a.txt"

    def boom(p):
        p.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_uses_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        p = atomic_write(tmp_path / "b.txt", lambda q: q.write_text("ok"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644 and p.read_text() == "ok"


def test_staged_dir_is_all_or_nothing(tmp_path):
    final = tmp_path / "result"
    with pytest.raises(ValueError):
        with staged_dir(final) as stage:
            (stage / "half.txt").write_text("x")
            raise ValueError("failed mid-way")
    assert list(tmp_path.iterdir()) == []
    with staged_dir(final) as stage:
        (stage / "done.txt").write_text("x")
    assert (final / "done.txt").is_file()
    with pytest.raises(OutputExistsError):
        with staged_dir(final):
            pass
    with staged_dir(final, overwrite=True) as stage:
        (stage / "new.txt").write_text("y")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]


def test_errors_cross_process_boundaries_intact():
    # reconstruct's photo workers hand their errors back pickled.
    import pickle

    from facenormals3d.errors import InputError, NoFaceError, OutputExistsError

    for err in (InputError("a.jpg", "not an image"), NoFaceError("b.png", "no face found"),
                InputError(None, "bad"), OutputExistsError("out/a")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err) and back.exit_code == err.exit_code
