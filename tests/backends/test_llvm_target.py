"""Vector widths: the host's (AVX-512 here), and AVX2 and SSE forced through target_features,
so the code paths of narrower machines run on this one."""

import re

import pytest

from backends import llvm
from ir import Graph, TensorType

from .helpers import check_graph, randn

HOST = llvm.host_target()


def mixed_graph() -> Graph:
    """Elementwise with remainders, GEMM, conv (general and depthwise), pool, softmax."""
    g = Graph()
    x = g.add_input("x", TensorType((1, 3, 11, 13)))
    c = g.call("conv2d", x, g.add_weight("w", randn(8, 3, 3, 3)), g.add_weight("b", randn(8)),
               pad=[1, 1, 1, 1], name="c")
    d = g.call("fused_conv2d", c, g.add_weight("dw", randn(8, 1, 3, 3)),
               g.add_weight("db", randn(8)), groups=8, stride=[2, 2], act="gelu", name="d")
    p = g.call("max_pool2d", d, kernel=[2, 2], stride=[2, 2], ceil_mode=True, name="p")
    f = g.call("flatten", p, name="f")
    h = g.call("linear", f, g.add_weight("lw", randn(33, f.shape[1])),
               g.add_weight("lb", randn(33)), name="h")
    e = g.call("tanh", h, name="e")
    g.outputs = [g.call("log_softmax", e, name="s"), g.call("exp", x, name="ex")]
    return g


def registers(asm: str) -> set[str]:
    return set(re.findall(r"%([xyz])mm\d+", asm))


@pytest.mark.skipif(HOST.vector_bytes != 64, reason="needs an AVX-512 host")
def test_host_uses_512_bit_vectors():
    model, _ = check_graph(mixed_graph(), [randn(1, 3, 11, 13)], rtol=1e-4, atol=1e-5,
                           num_threads=1)
    assert model.target.vector_bytes == 64
    assert "z" in registers(model.asm)


@pytest.mark.parametrize("features, width, allowed", [
    ("avx2", 32, {"x", "y"}), ("sse", 16, {"x"}),
    ("-avx512f", 32, {"x", "y"}),
])
def test_narrower_targets(features, width, allowed):
    target = llvm.host_target(features)
    if target.vector_bytes != width:
        pytest.skip("host lacks these features")
    model, _ = check_graph(mixed_graph(), [randn(1, 3, 11, 13)], rtol=1e-4, atol=1e-5,
                           num_threads=1, target_features=features)
    assert model.target.vector_bytes == width
    assert registers(model.asm) <= allowed, registers(model.asm)
    assert f"{width * 8}-bit vectors" in model.llvm_ir


def test_lanes_follow_width():
    assert llvm.host_target("sse").lanes(4) == 4
    assert llvm.host_target("avx2").lanes(4) == 8
    if HOST.vector_bytes == 64:
        assert HOST.lanes(4) == 16 and HOST.lanes(8) == 8


def test_sse_elementwise_remainders():
    for n in (1, 3, 4, 5, 15, 16, 17, 33):
        g = Graph()
        x = g.add_input("x", TensorType((n,)))
        g.outputs = [g.call("sigmoid", g.call("add", x, x, name="a"), name="s")]
        check_graph(g, [randn(n)], rtol=1e-4, atol=1e-6, num_threads=1,
                    target_features="sse")
