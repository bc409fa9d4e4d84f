"""Parameter files and every other file fastconv writes: exact names, atomic
replacement, and a reader that refuses a hostile .npz before reading its data.

A full disk is simulated with ``ulimit -f`` (RLIMIT_FSIZE) in a child process:
there a write past the limit fails with EFBIG (Python ignores SIGXFSZ), which
is what a full disk looks like to the writer.
"""
import errno
import io
import json
import os
import resource
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import numpy as np
import pytest

from fastconv.io import checkpoint
from fastconv.io.checkpoint import CheckpointError, atomic_write, read_npz, save_npz
from fastconv.nn import SimpleConvNet


def small_net(seed=0, dtype=np.float32):
    return SimpleConvNet((1, 8, 8), {"filter_num": 3, "filter_size": 3}, hidden_size=5,
                         output_size=3, seed=seed, dtype=dtype)


def params_of(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def assert_same_params(a, b):
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def run_with_file_limit(code, limit):
    """Run ``code`` in a child Python whose files may not grow past ``limit`` bytes."""
    def limit_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, preexec_fn=limit_files)


# --- save_params writes exactly the path it is given ------------------------------

@pytest.mark.parametrize("name", ["mynet", "params.pkl", "params.npz", "w.e.i.g.h.t.s",
                                  "net.NPZ"])
def test_save_and_load_of_the_same_name_round_trip(name, tmp_path):
    net, other = small_net(0), small_net(1)
    path = tmp_path / name
    net.save_params(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    other.load_params(path)
    assert_same_params(other.params, net.params)
    # A str path, relative to the working folder, behaves the same.
    os.chdir(tmp_path)
    small_net(2).save_params(name)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    other.load_params(name)
    assert_same_params(other.params, small_net(2).params)


def test_save_params_pkl_name_holds_npz_content(tmp_path):
    """The book's file name: written as .npz content under exactly that name."""
    net = small_net()
    net.save_params(tmp_path / "params.pkl")
    assert (tmp_path / "params.pkl").read_bytes()[:4] == b"PK\x03\x04"
    assert_same_params(params_of(tmp_path / "params.pkl"), net.params)
    assert not (tmp_path / "params.pkl.npz").exists()


@pytest.mark.parametrize("kind", ["trailing-slash", "existing-folder"])
def test_save_params_refuses_a_folder(kind, tmp_path):
    folder = tmp_path / "dir"
    if kind == "existing-folder":
        folder.mkdir()
        target = folder
    else:
        target = str(folder) + os.sep
    with pytest.raises(CheckpointError, match="folder") as info:
        small_net().save_params(target)
    assert isinstance(info.value, ValueError)
    assert str(folder) in str(info.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == (["dir"] if kind != "trailing-slash"
                                                           else [])


@pytest.mark.parametrize("bad", [None, 3, io.BytesIO()])
def test_save_params_wants_a_path(bad):
    with pytest.raises(TypeError, match="file_name"):
        small_net().save_params(bad)


# --- atomic replacement -------------------------------------------------------------

def test_full_disk_keeps_the_previous_params(tmp_path):
    path = tmp_path / "params.npz"
    good = SimpleConvNet(seed=0)
    good.save_params(path)
    before = path.read_bytes()
    assert len(before) > 200_000
    proc = run_with_file_limit(f"""
        import sys
        from fastconv.nn import SimpleConvNet
        try:
            SimpleConvNet(seed=1).save_params({str(path)!r})
        except OSError as exc:
            print(exc.errno)
            sys.exit(3)
        """, limit=100_000)
    assert proc.returncode == 3, proc.stderr
    assert int(proc.stdout) == errno.EFBIG
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.npz"]
    other = SimpleConvNet(seed=2)
    other.load_params(path)
    assert_same_params(other.params, good.params)


def test_error_mid_write_keeps_the_previous_params(tmp_path, monkeypatch):
    path = tmp_path / "params.npz"
    small_net(0).save_params(path)
    before = path.read_bytes()
    real_write_array = np.lib.format.write_array
    calls = []

    def fail_on_second_array(fp, array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            fp.write(b"half an array")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_array(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", fail_on_second_array)
    with pytest.raises(OSError, match="No space left"):
        small_net(1).save_params(path)
    assert len(calls) == 2
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.npz"]


def test_json_written_by_the_cli_is_atomic(tmp_path):
    path = tmp_path / "history.json"
    path.write_text('{"old": true}')
    proc = run_with_file_limit(f"""
        import sys
        from fastconv.cli import common as cli
        try:
            cli.write_json({str(path)!r}, {{"losses": list(range(100000))}})
        except OSError:
            sys.exit(3)
        """, limit=4096)
    assert proc.returncode == 3, proc.stderr
    assert json.loads(path.read_text()) == {"old": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json"]


def test_png_written_by_viz_is_atomic(tmp_path):
    from fastconv.cli import plots as viz
    path = tmp_path / "filters.png"
    W = np.random.default_rng(0).standard_normal((30, 1, 5, 5))
    viz.plot_filters(W, path)
    before = path.read_bytes()
    assert before[:8] == b"\x89PNG\r\n\x1a\n" and len(before) > 2048
    proc = run_with_file_limit(f"""
        import sys
        import numpy as np
        from fastconv.cli import plots as viz
        try:
            viz.plot_filters(np.ones((30, 1, 5, 5)), {str(path)!r}, title="new")
        except OSError:
            sys.exit(3)
        """, limit=1024)
    assert proc.returncode == 3, proc.stderr
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["filters.png"]


def test_atomic_write_replaces_only_on_success(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w") as f:
            f.write("new, but not finished")
            raise RuntimeError("stop")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with atomic_write(path, "w") as f:
        f.write("new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_flushes_and_syncs_before_renaming(tmp_path, monkeypatch):
    path = tmp_path / "out.bin"
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        if not os.path.isdir(f"/proc/self/fd/{fd}"):
            # The data is in the file (flushed) when it is synced.
            events.append(("fsync", os.fstat(fd).st_size))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with atomic_write(path) as f:
        f.write(b"x" * 1000)
    assert events == [("fsync", 1000), ("replace", str(path))]


def test_atomic_write_failing_sync_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    def fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="Input/output"):
        with atomic_write(path) as f:
            f.write(b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_atomic_write_gives_a_new_file_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "new.bin") as f:
            f.write(b"1")
    finally:
        os.umask(umask)
    assert (tmp_path / "new.bin").stat().st_mode & 0o777 == 0o644


def test_atomic_write_keeps_an_existing_files_permissions(tmp_path):
    path = tmp_path / "shared.json"
    path.write_text("{}")
    path.chmod(0o640)
    with atomic_write(path, "w") as f:
        f.write("[]")
    assert path.stat().st_mode & 0o777 == 0o640


def test_atomic_write_writes_through_a_symlink(tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    with atomic_write(link, "w") as f:
        f.write("new")
    assert link.is_symlink() and target.read_text() == "new"


def test_atomic_write_refuses_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError):
        with atomic_write(tmp_path) as f:
            f.write(b"x")
    assert list(tmp_path.iterdir()) == []


# --- the guarded reader --------------------------------------------------------------

def npy_member(archive, name, shape, dtype="<f4", body_bytes=None, chunk=1 << 20):
    """Write member ``name`` holding an .npy header for ``shape`` and ``body_bytes``
    zero bytes (default: what the header promises), streamed so that a large member
    costs no memory here."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    if body_bytes is None:
        body_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    with archive.open(name, "w", force_zip64=True) as m:
        m.write(header.getvalue())
        zeros = bytes(min(chunk, body_bytes))
        left = body_bytes
        while left:
            m.write(zeros[:min(left, len(zeros))])
            left -= min(left, len(zeros))


def bomb_npz(path, net, extra_name="zeros.npy", extra_shape=(300 << 20,), dtype="|u1",
             replace=None):
    """``net``'s parameters plus a 300 MB member of zeros (about 300 KB compressed)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, value in net.params.items():
            if name == replace:
                continue
            buf = io.BytesIO()
            np.lib.format.write_array(buf, value)
            z.writestr(name + ".npy", buf.getvalue())
        npy_member(z, extra_name, extra_shape, dtype)
    assert path.stat().st_size < 2 << 20
    return path


def peak_bytes(call):
    """The peak of Python and NumPy allocations during ``call()`` (it must raise)."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as info:
            call()
        return tracemalloc.get_traced_memory()[1], info.value
    finally:
        tracemalloc.stop()


def test_unexpected_huge_member_is_refused_before_reading(tmp_path):
    net = small_net()
    path = bomb_npz(tmp_path / "bomb.npz", net)
    before = {k: v.copy() for k, v in net.params.items()}
    peak, exc = peak_bytes(lambda: net.load_params(path))
    assert isinstance(exc, CheckpointError)
    assert str(path) in str(exc) and "zeros" in str(exc)
    assert peak < 16 << 20, f"{peak} bytes allocated to refuse a member by its name"
    assert_same_params(net.params, before)


def test_expected_member_of_a_huge_shape_is_refused_before_reading(tmp_path):
    net = small_net()
    path = bomb_npz(tmp_path / "bomb.npz", net, extra_name="W2.npy",
                    extra_shape=(75 << 20, 1), dtype="<f4", replace="W2")
    peak, exc = peak_bytes(lambda: net.load_params(path))
    assert isinstance(exc, CheckpointError)
    assert str(path) in str(exc) and "W2" in str(exc) and "shape" in str(exc)
    assert peak < 16 << 20, f"{peak} bytes allocated to refuse a shape"


def test_generic_reader_checks_declared_sizes_against_the_zip(tmp_path):
    # The header promises 2**40 elements; the zip says the member holds 64 bytes.
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as z:
        npy_member(z, "W1.npy", (1 << 40,), "<f8", body_bytes=64)
    with pytest.raises(CheckpointError, match=r"huge\.npz.*W1.*declares") as info:
        read_npz(path)
    assert "8796093022208 bytes" in str(info.value)


def test_member_longer_than_its_header_says_is_refused(tmp_path):
    path = tmp_path / "long.npz"
    with zipfile.ZipFile(path, "w") as z:
        npy_member(z, "W1.npy", (3,), "<f4", body_bytes=12 + 4096)
    with pytest.raises(CheckpointError, match=r"long\.npz.*W1"):
        read_npz(path)


def test_duplicate_member_names_are_refused(tmp_path):
    net = small_net()
    path = tmp_path / "dup.npz"
    net.save_params(path)
    with pytest.warns(UserWarning, match="Duplicate name"):
        with zipfile.ZipFile(path, "a") as z:
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ones_like(net.params["W1"]))
            z.writestr("W1.npy", buf.getvalue())
    with pytest.raises(CheckpointError, match=r"dup\.npz.*W1.*more than once"):
        small_net().load_params(path)


def test_read_npz_returns_what_save_npz_wrote(tmp_path):
    arrays = {"a": np.arange(6.0).reshape(2, 3), "b": np.array([1, 2], dtype=np.int16),
              "c": np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
              "d": np.zeros((0, 5))}
    save_npz(tmp_path / "x", arrays)
    back = read_npz(tmp_path / "x")
    assert set(back) == set(arrays)
    for k in arrays:
        assert back[k].dtype == arrays[k].dtype
        np.testing.assert_array_equal(back[k], arrays[k])
    # np.load agrees: the file is an ordinary .npz.
    assert_same_params(params_of(tmp_path / "x"), arrays)


def test_save_npz_refuses_object_arrays(tmp_path):
    with pytest.raises(ValueError, match="object"):
        save_npz(tmp_path / "o.npz", {"a": np.array([None, 1], dtype=object)})
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_error_names_the_file(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"PK\x03\x04 but not a zip")
    with pytest.raises(CheckpointError, match=r"junk\.npz"):
        read_npz(path)
    assert issubclass(checkpoint.CheckpointError, ValueError)


def test_viz_still_draws_into_an_open_file():
    from fastconv.cli import plots as viz
    buf = io.BytesIO()
    viz.plot_filters(np.ones((4, 1, 3, 3)), buf)
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
