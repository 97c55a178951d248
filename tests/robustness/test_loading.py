"""Loading never executes code: saved graphs and reproducers are read without unpickling
(a pickle inside is refused, and its payload never runs); corrupt files raise the project's
error. The LLVM backend keeps no disk cache of compiled kernels: compiling and calling a
model writes no file anywhere it could (home, cache and temporary directories, the working
directory), so there is no cache another user could plant a file in."""

from __future__ import annotations

import random

import numpy as np
import pytest

import compiler
import ir
from compiler.tools import repro
from ir import Graph, TensorType

from .isolate import run_isolated


class Payload:
    """Unpickling this writes a marker file: the proof that loading ran code."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return _write_marker, (self.marker,)


def _write_marker(path):  # what an attacker's pickle would do, harmlessly
    with open(path, "w") as f:
        f.write("pwned")


def _graph() -> Graph:
    g = Graph()
    x = g.add_input("x", TensorType((3,)))
    g.outputs = [g.call("add", x, g.add_weight("w", np.ones(3, np.float32)))]
    return g


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "marker"
    yield path
    assert not path.exists(), "loading a file ran code from it"


def _evil(marker) -> np.ndarray:
    return np.array([Payload(str(marker))], dtype=object)


def test_the_payload_is_real(tmp_path):
    """What the tests below refuse would run if unpickled."""
    path, marker = tmp_path / "evil.npz", tmp_path / "marker"
    np.savez(path, x=_evil(marker))
    with np.load(path, allow_pickle=True) as f:
        f["x"]
    assert marker.read_text() == "pwned"


@pytest.mark.parametrize("where", ["text", "weight"])
def test_saved_graph_with_a_pickle_is_refused(tmp_path, marker, where):
    g = _graph()
    arrays = {"__ir__": np.array(str(g)), "w:w": np.ones(3, np.float32)}
    arrays["__ir__" if where == "text" else "w:w"] = _evil(marker)
    path = tmp_path / "evil.npz"
    np.savez(path, **arrays)  # np.savez pickles object arrays
    with pytest.raises(ir.ParseError, match="Object arrays cannot be loaded"):
        ir.load(path)
    with pytest.raises(ir.LaminaError):
        compiler.compile(str(path))


def test_reproducer_with_a_pickle_is_refused(tmp_path, marker):
    path = tmp_path / "evil.npz"
    repro.save(path, _graph(), ["eliminate_dead_code"], [np.zeros(3, np.float32)],
               kind="crash", backend="reference")
    with np.load(path) as f:
        arrays = dict(f)
    arrays["in:0"] = _evil(marker)
    np.savez(path, **arrays)
    with pytest.raises(ir.LaminaError, match="not a Lamina reproducer"):
        repro.load(path)


def test_corrupt_saved_graphs_raise_parse_errors(tmp_path):
    path = tmp_path / "g.npz"
    ir.save(_graph(), path)
    data = path.read_bytes()
    rnd = random.Random(0)
    variants = [b"", data[:10], data[: len(data) // 2], b"\x93NUMPY\x01\x00junk"]
    for _ in range(150):
        b = bytearray(data)
        for _ in range(3):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        variants.append(bytes(b))
    loaded = 0
    for i, content in enumerate(variants):
        p = tmp_path / f"v{i}.npz"
        p.write_bytes(content)
        try:
            g = ir.load(p)
        except ir.LaminaError:
            continue
        ir.verify(g)
        loaded += 1
    assert loaded < len(variants)


def test_compiling_writes_no_files(tmp_path):
    dirs = {name: tmp_path / name for name in ("home", "cache", "tmp", "cwd")}
    for d in dirs.values():
        d.mkdir()
    run_isolated("""
        import numpy as np
        import compiler
        from compiler import nn
        net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                            nn.Linear(4 * 6 * 6, 5))
        x = np.ones((2, 3, 6, 6), np.float32)
        for threads in (1, 2):
            compiler.compile(net, x, backend="llvm", num_threads=threads)(x)
    """, env={"HOME": str(dirs["home"]), "XDG_CACHE_HOME": str(dirs["cache"]),
              "TMPDIR": str(dirs["tmp"])}, cwd=dirs["cwd"])
    written = [str(p) for d in dirs.values() for p in d.rglob("*")]
    assert not written, written
