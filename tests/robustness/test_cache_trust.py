"""The disk cache of compiled code loads only what this user wrote there, intact."""

import os

import numpy as np
import pytest

from backends import llvm
from backends.llvm import cache
from ir import Graph, TensorType


def _entry(tmp_path):
    """Compile a small graph with a disk cache; (graph, key of its entry)."""
    g = Graph()
    x = g.add_input("x", TensorType((3, 17)))
    g.outputs = [g.call("tanh", g.call("relu", x))]
    cache.clear_memory()  # an earlier test's entry would make this compile a memory hit
    llvm.compile_graph(g, num_threads=1, cache_dir=tmp_path)
    (obj,) = tmp_path.glob("*.o")
    cache.clear_memory()
    return g, obj.stem


def test_intact_own_entry_is_used(tmp_path):
    _, k = _entry(tmp_path)
    assert cache.get(k, tmp_path) is not None
    assert {p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {0o600}


@pytest.mark.parametrize("tamper", ["flip_payload", "dir_world_writable", "file_group_writable",
                                    "other_owner", "symlink"])
def test_untrusted_or_damaged_entry_is_a_miss(tmp_path, tamper):
    g, k = _entry(tmp_path)
    obj = tmp_path / f"{k}.o"
    if tamper == "flip_payload":
        data = bytearray(obj.read_bytes())
        data[-1] ^= 0xFF
        obj.write_bytes(bytes(data))
    elif tamper == "dir_world_writable":
        tmp_path.chmod(0o777)
    elif tamper == "file_group_writable":
        obj.chmod(0o620)
    elif tamper == "other_owner":
        if os.getuid() != 0:
            pytest.skip("changing a file's owner needs root")
        os.chown(obj, 12345, 12345)
    else:
        real = tmp_path / "elsewhere.o"
        obj.rename(real)
        obj.symlink_to(real)
    assert cache.get(k, tmp_path) is None
    cache.clear_memory()
    fn = llvm.compile_graph(g, num_threads=1, cache_dir=tmp_path)  # recompiles, still right
    x = np.random.default_rng(0).standard_normal((3, 17)).astype(np.float32)
    np.testing.assert_allclose(fn(x), np.tanh(np.maximum(x, 0)), rtol=1e-5, atol=1e-6)


def test_untrusted_directory_is_not_written(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    g = Graph()
    x = g.add_input("x", TensorType((4,)))
    g.outputs = [g.call("exp", x)]
    llvm.compile_graph(g, num_threads=1, cache_dir=shared)
    assert list(shared.iterdir()) == []
