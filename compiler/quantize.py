"""Post-training quantization: a float model -> a graph with explicit quantize/dequantize.

    qgraph = compiler.quantize(model, calibration_batches, method="minmax")
    print(qgraph.quantization_report)        # what was quantized, what stayed float, why
    fn = compiler.compile(qgraph, x)         # fold_quantized makes the int8 kernels

1. The model becomes a float graph (`to_graph`, then the exact clean-up passes and batch
   norm folding), and `matmul(x, @W)` with a constant 2-D W becomes `linear(x, @W.T)`.
2. Calibration runs the model natively (the llvm backend, compiled once per batch shape;
   the reference interpreter where LLVM is missing) over the batches and records, per
   activation feeding a quantizable layer, a range (`Observer`: min/max, a percentile, or the
   KL-divergence threshold TensorRT uses for "entropy").
3. Rewrite, as onnxruntime's QDQ format: each such activation passes through
   quantize -> dequantize (u8, asymmetric, per tensor; the range always holds 0); each
   weight is stored as i8 (symmetric, per output channel unless per_channel=False) behind a
   dequantize; each bias as i32 in units of x_scale * w_scale[n] behind a dequantize.
   The graph still computes in float (each layer sees the quantized values); the
   `fold_quantized` pass (in compile()'s O2/O3 pipelines) turns every such layer into the
   integer `qlinear` / `qconv2d`, and a layer whose result feeds another quantized layer
   (directly or through a flatten/reshape, which then moves bytes) requantizes in its
   epilogue.

Linear layers (and matmul with a constant weight) and convolutions -- dense, grouped and
depthwise -- have integer kernels, and so has a matmul of two activations (attention's
Q.K^T and P.V: both operands quantized, `qmatmul`) and a residual add feeding a quantized
layer (`qadd`: its operands' producers then requantize in their epilogues, as in
onnxruntime's QDQ models); everything else stays float, as the report says.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

import backends
import ir
import passes as _passes
from backends.reference import run as _reference_run
from ir.errors import OptionError, OptionTypeError
from ir.ops.bf16 import pack_pairs
from passes.patterns import drop_unused_weights

from .compile import compile as _compile
from .compile import to_graph
from .tools.progress import Progress

METHODS = ("minmax", "percentile", "entropy")
_FLOAT_PASSES = ["eliminate_dropout", "eliminate_identities", "fold_constants",
                 "fold_batch_norm", "eliminate_common_subexpressions", "eliminate_dead_code"]
# Heavy operators the report names when they stay float (the rest are summarised by count).
_HEAVY = ("conv1d", "conv2d", "conv3d", "conv_transpose2d", "matmul", "linear", "lstm", "gru",
          "rnn", "attention")


# ---- observers ------------------------------------------------------------------------------
class Observer:
    """Records what one tensor holds over the calibration batches; `range()` gives the
    [lo, hi] to quantize it to (always holding 0, so that 0 is exact)."""

    def __init__(self, method: str, percentile: float = 99.99, bins: int = 2048):
        self.method, self.percentile, self.bins = method, percentile, bins
        self.lo, self.hi = math.inf, -math.inf
        self.samples: list[np.ndarray] = []

    def update(self, a: np.ndarray) -> None:
        a = np.asarray(a, np.float32).ravel()
        a = a[np.isfinite(a)]
        if a.size == 0:
            return
        self.lo, self.hi = min(self.lo, float(a.min())), max(self.hi, float(a.max()))
        if self.method != "minmax":  # a bounded sample per batch keeps memory flat
            step = max(1, a.size // 65536)
            self.samples.append(a[::step])

    def range(self) -> tuple[float, float]:
        if self.lo > self.hi:  # nothing seen
            return 0.0, 0.0
        lo, hi = self.lo, self.hi
        if self.method == "percentile":
            s = np.concatenate(self.samples)
            lo, hi = (float(np.percentile(s, 100 - self.percentile)),
                      float(np.percentile(s, self.percentile)))
        elif self.method == "entropy":
            t = entropy_threshold(np.abs(np.concatenate(self.samples)), self.bins)
            lo, hi = max(lo, -t), min(hi, t)
        return min(lo, 0.0), max(hi, 0.0)


def entropy_threshold(mags: np.ndarray, bins: int = 2048, levels: int = 128) -> float:
    """The |x| clipping threshold whose `levels`-level quantization of the histogram keeps
    the KL divergence to the original smallest (TensorRT's entropy calibration)."""
    top = float(mags.max()) if mags.size else 0.0
    if top == 0.0:
        return 0.0
    hist, edges = np.histogram(mags, bins=bins, range=(0.0, top))
    hist = hist.astype(np.float64)
    best, best_kl = bins, math.inf
    for i in range(levels, bins + 1, max(1, (bins - levels) // 64)):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()  # clipped mass lands in the last bin
        q = np.zeros(i)
        for chunk in np.array_split(np.arange(i), levels):  # merge to `levels`, spread back
            nz = chunk[hist[chunk] > 0]  # Q from the unclipped bins: clipping costs
            if nz.size:
                q[nz] = hist[chunk].sum() / nz.size
        mask = p > 0
        if not mask.any() or not q.any():
            continue
        pn, qn = p / p.sum(), q / q.sum()
        qn[mask & (qn == 0)] = 1e-6  # smoothed, as MXNet does: P's clipped tail in an empty bin
        kl = float(np.sum(pn[mask] * np.log(pn[mask] / qn[mask])))
        if kl < best_kl:
            best, best_kl = i, kl
    return float(edges[best])


def activation_params(lo: float, hi: float) -> tuple[float, int]:
    """(scale, zero point) mapping [lo, hi] (holding 0) onto u8 [0, 255]."""
    if hi - lo <= 0:
        return 1.0, 0
    scale = float(np.float32((hi - lo) / 255.0))
    return scale, int(np.clip(round(-lo / scale), 0, 255))


def weight_params(w: np.ndarray, per_channel: bool) -> tuple[np.ndarray, tuple[float, ...]]:
    """Symmetric i8 weights in [-127, 127], one scale per output channel (row) or one."""
    peak = np.abs(w).max(axis=1) if per_channel else np.array([np.abs(w).max()])
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    s = scale[:, None] if per_channel else scale[0]
    q = np.clip(np.rint(w / s), -127, 127).astype(np.int8)
    return q, tuple(float(v) for v in scale)


# ---- the report -----------------------------------------------------------------------------
@dataclass
class QuantizationReport:
    """What quantize() did: layers made int8 (with their scales), heavy layers left float
    and why, counts of the other float operators, and the signal-to-quantization-noise
    ratio of the first output on (up to 4 of) the calibration batches of the graph's shape,
    else on the example inputs (reference interpreter)."""

    quantized: list[str] = field(default_factory=list)
    kept_float: list[tuple[str, str, str]] = field(default_factory=list)  # node, op, why
    other_float: dict[str, int] = field(default_factory=dict)
    sqnr_db: float | None = None
    method: str = "minmax"

    def __str__(self) -> str:
        lines = [f"int8 quantization ({self.method}): {len(self.quantized)} layer(s) quantized"]
        lines += [f"  int8   {q}" for q in self.quantized]
        lines += [f"  float  %{n} ({op}): {why}" for n, op, why in self.kept_float]
        if self.other_float:
            ops = ", ".join(f"{op} x{c}" for op, c in sorted(self.other_float.items()))
            lines.append(f"  float  other operators (no integer kernel needed or none yet): "
                         f"{ops}")
        if self.sqnr_db is not None:
            lines.append(f"  SQNR of output 0 on the calibration batches: {self.sqnr_db:.1f} dB")
        return "\n".join(lines)


# ---- the driver -----------------------------------------------------------------------------
def quantize(model, calibration_batches: Iterable, dtype: str = "int8",
             per_channel: bool = True, method: str = "minmax", *, percentile: float = 99.99,
             example_inputs=None, on_batch: Callable[[int, int], None] | None = None,
             progress: bool | None = None) -> ir.Graph:
    """Post-training int8 quantization of `model` (anything compiler.compile takes);
    `calibration_batches`: input arrays, or tuples of them for several inputs. Returns the
    quantized graph (QDQ form, see the module docstring) with `.quantization_report`.
    The graph takes inputs shaped like `example_inputs` (a tuple of arrays; default: the
    first batch); batches of other shapes are calibrated on the model traced (or imported)
    again for them, with the same value names. `on_batch(done, total)` is called after each
    calibration batch. A bar over the batches is drawn on stderr when it is a terminal
    (`progress=None`), always (True) or never (False).
    dtype="bfloat16" gives linear and conv2d layers bfloat16 weights instead, with float32
    activations and no calibration (`quantize_bf16`)."""
    if dtype == "bfloat16":  # weights only: nothing to calibrate (see quantize_bf16)
        return quantize_bf16(model, _batches(calibration_batches), example_inputs)
    if dtype != "int8":
        raise OptionError(f"quantize(): dtype must be 'int8' or 'bfloat16', got {dtype!r}")
    if method not in METHODS:
        raise OptionError(f"quantize(): method must be one of {', '.join(METHODS)}, got "
                          f"{method!r}")
    if not 50 < percentile <= 100:
        raise OptionError(f"quantize(): percentile must be in (50, 100], got {percentile}")
    batches = _batches(calibration_batches)
    example = batches[0] if example_inputs is None else _batches([example_inputs])[0]
    graph = _float_graph(model, example)
    report = QuantizationReport(method=method)
    layers = _plan(graph, report)
    names = list(dict.fromkeys(v.name for n in layers for v in _activations(n)))
    graphs = {_shapes(example): graph}

    def graph_for(batch):
        key = _shapes(batch)
        if key not in graphs:  # an ir.Graph cannot be re-traced: run() then says the shape
            graphs[key] = graph if isinstance(model, ir.Graph) else _float_graph(model, batch)
        return graphs[key]

    with Progress("calibrating", total=len(batches), enabled=progress) as bar:
        def advance(done: int, total: int) -> None:
            bar.advance()
            if on_batch is not None:
                on_batch(done, total)

        run = _Runner()
        observers = _calibrate(graph_for, names, batches, method, percentile, advance, run)
    qgraph = graph.copy()
    _rewrite(qgraph, [qgraph_node(qgraph, n) for n in layers], observers, per_channel, report)
    ir.verify(qgraph)
    report.other_float = _other_float(qgraph, {n.name for n in layers})
    same = [b for b in batches if _shapes(b) == _shapes(example)]
    report.sqnr_db = _sqnr(graph, qgraph, same[:4] or [example], run)
    qgraph.quantization_report = report
    return qgraph


def _batches(calibration_batches) -> list[tuple[np.ndarray, ...]]:
    if isinstance(calibration_batches, (np.ndarray, str, bytes)) or \
            not isinstance(calibration_batches, Iterable):
        raise OptionTypeError(f"quantize(): calibration_batches must be an iterable of input "
                              f"arrays (or tuples of them), got "
                              f"{type(calibration_batches).__name__}")
    out = []
    for b in calibration_batches:
        items = b if isinstance(b, (tuple, list)) else (b,)
        out.append(tuple(np.asarray(x) for x in items))
    if not out:
        raise OptionError("quantize(): calibration_batches is empty; give at least one batch")
    return out


def _float_graph(model, example: tuple) -> ir.Graph:
    graph = to_graph(model, *example)
    ir.verify(graph)
    graph = _passes.optimize(graph, passes=_FLOAT_PASSES)
    _matmul_to_linear(graph)
    return graph


def _matmul_to_linear(graph: ir.Graph) -> None:
    """matmul(x, @W) with a constant 2-D W -> linear(x, @W.T): one layer form to quantize."""
    for node in [n for n in graph.nodes if n.op == "matmul"]:
        x, w = node.inputs
        data = graph.weights.get(w.name) if w.kind == "weight" else None
        if data is None or data.ndim != 2 or x.type.rank < 2 or x.type.dtype != "f32":
            continue
        wt = graph.add_weight(graph.fresh_name(f"{w.name}.T"), np.ascontiguousarray(data.T))
        with graph.inserting_before(node):
            y = graph.call("linear", x, wt)
        graph.replace_all_uses_with(node.output, y)
        graph.erase_node(node)
        if not w.uses:
            graph.remove_weight(w.name)


def _plan(graph: ir.Graph, report: QuantizationReport) -> list[ir.Node]:
    """The layers to quantize; heavy operators left float go in the report."""
    layers = []
    for node in graph.nodes:
        why = _why_float(graph, node)
        if why is None:
            layers.append(node)
        elif node.op in _HEAVY:
            report.kept_float.append((node.name, node.op, why))
    read = {id(v) for n in layers for v in _activations(n)}  # what quantized layers read
    return layers + [n for n in graph.nodes if _residual_add(graph, n, read)]


def _residual_add(graph: ir.Graph, node: ir.Node, read: set[int]) -> bool:
    """An add of two activations of one shape (a residual connection) whose result, or its
    relu, a quantized layer reads: both operands are quantized too, so that the add runs
    on bytes (`qadd`) and the layers producing them requantize in their epilogues."""
    if node.op != "add" or any(v.kind == "weight" or v.type.dtype != "f32"
                               or v.shape != node.output.shape for v in node.inputs):
        return False
    out = node.output
    users = list(dict.fromkeys(out.uses))
    if len(users) == 1 and users[0].op == "relu":
        out = users[0].output
    return id(out) in read


def _activations(node: ir.Node) -> list[ir.Value]:
    """The float operands calibrated and quantized: a layer's input, both of a matmul or a
    residual add."""
    return list(node.inputs) if node.op in ("matmul", "add") else [node.inputs[0]]


def _why_float(graph: ir.Graph, node: ir.Node) -> str | None:
    if node.op == "matmul":  # a constant weight made it a linear: two activations (attention)
        a, b = node.inputs
        if a.type.dtype != "f32" or b.type.dtype != "f32" or min(a.type.rank, b.type.rank) < 2:
            return "no integer kernel for this matmul (f32 operands of rank >= 2 only)"
        if a.type.shape[-1] > 33024:
            return "more than 33024 products per output: the int32 sum could overflow"
        return None
    if node.op not in ("linear", "conv2d"):
        return "no integer kernel for this operator yet" if node.op in _HEAVY else "-"
    if node.inputs[0].type.dtype != "f32":
        return f"input is {node.inputs[0].type.dtype}, not f32"
    if any(v.kind != "weight" or v.name not in graph.weights for v in node.inputs[1:]):
        return "weight or bias is computed at run time (the int8 kernel packs it once)"
    if math.prod(node.inputs[1].type.shape[1:]) > 65792:
        return "more than 65792 products per output: the int32 sum could overflow"
    return None


def qgraph_node(graph: ir.Graph, node: ir.Node) -> ir.Node:
    """The node of the same name in a copy of the graph."""
    return next(n for n in graph.nodes if n.name == node.name)


def _shapes(batch) -> tuple:
    return tuple((a.shape, a.dtype.str) for a in batch)


def _probe(graph: ir.Graph, names: list[str]) -> ir.Graph:
    """A copy of `graph` that also returns the values `names`, after its own outputs."""
    probe = graph.copy()
    by_name = {v.name: v for v in probe.values()}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ir.LaminaError(f"quantize(): the model traced for another batch shape lacks "
                             f"the values {missing}; give batches of one shape")
    probe.outputs = [*probe.outputs, *(by_name[n] for n in names)]
    return probe


class _Runner:
    """Runs graphs on inputs: native code (each graph compiled once per input shapes), else
    the reference interpreter. opt_level 0 computes a float graph as written; a quantized
    one is run as compile() runs it (its int8 kernels, opt_level 2)."""

    def __init__(self):
        self.native = backends.available("llvm")
        self.builds: dict[tuple, object] = {}  # (graph id, shapes, opt_level) -> callable

    def __call__(self, graph: ir.Graph, *inputs, opt_level: int = 0) -> list[np.ndarray]:
        if not self.native:
            return _reference_run(graph, *inputs)
        key = (id(graph), _shapes(inputs), opt_level)
        if key not in self.builds:  # (the graphs outlive the runner: ids stay theirs)
            self.builds[key] = _compile(graph, *inputs, opt_level=opt_level, backend="llvm")
        out = self.builds[key](*inputs)
        return [np.asarray(o) for o in (out if isinstance(out, tuple) else (out,))]


def _calibrate(graph_for, names, batches, method, percentile, on_batch,
               run) -> dict[str, Observer]:
    """Run the model on every batch (with `run`, a _Runner), recording the values `names`."""
    probes: dict[int, tuple[ir.Graph, int]] = {}
    observers = {n: Observer(method, percentile) for n in names}
    for i, batch in enumerate(batches):
        g = graph_for(batch)
        if id(g) not in probes:
            probes[id(g)] = (_probe(g, names), len(g.outputs))
        probe, n_out = probes[id(g)]
        results = run(probe, *batch)
        for n, a in zip(names, results[n_out:]):
            observers[n].update(a)
        if on_batch is not None:
            on_batch(i + 1, len(batches))
    return observers


def _rewrite(graph, layers, observers, per_channel, report) -> None:
    done: dict[str, tuple[ir.Value, float, int]] = {}  # activation -> (dequantized, s, zp)

    def quantized(x: ir.Value) -> tuple[ir.Value, float, int]:
        """x behind quantize -> dequantize, once: every reader of x then reads the
        dequantized value, which a later layer sharing x finds here under its own name."""
        if x.name not in done:
            scale, zp = activation_params(*observers[x.name].range())
            d = _qdq(graph, x, scale, zp)
            done[x.name] = done[d.name] = (d, scale, zp)
        return done[x.name]

    for node in layers:
        if node.op in ("matmul", "add"):
            shapes = " x ".join(str(list(v.type.shape)) for v in node.inputs)
            params = [quantized(v)[1:] for v in list(node.inputs)]
            report.quantized.append(f"%{node.name} ({node.op} {shapes}): " + ", ".join(
                f"{n} u8 scale={s:.4g} zp={z}" for n, (s, z) in zip("ab", params)))
            continue
        xd, x_scale, x_zp = quantized(node.inputs[0])
        w = graph.weights[node.inputs[1].name]
        wq, w_scale = weight_params(w.reshape(w.shape[0], -1), per_channel)
        wq = wq.reshape(w.shape)
        wd = _dequantized_weight(graph, node, wq, w_scale)
        ins = [xd, wd]
        if len(node.inputs) == 3:
            ins.append(_quantized_bias(graph, node, x_scale, w_scale))
        for old, new in zip(node.inputs, ins):
            node.replace_input(old, new)
        report.quantized.append(
            f"%{node.name} ({node.op} {list(w.shape)}): x u8 scale={x_scale:.4g} zp={x_zp}, "
            f"w i8 {'per channel' if per_channel else 'per tensor'}")
    drop_unused_weights(graph, list(graph.params.values()))


MOVES = ("flatten", "reshape")  # data movement a quantized tensor passes through as bytes


def _qdq(graph: ir.Graph, x: ir.Value, scale: float, zp: int) -> ir.Value:
    """quantize -> dequantize after `x`; every reader of x reads the dequantized value.
    When x is a flatten/reshape of a value nothing else reads, the quantize goes before it
    and the bytes move: the producing layer can then requantize in its epilogue."""
    readers = list(dict.fromkeys(x.uses))
    move = x.node if x.node is not None and x.node.op in MOVES else None
    src = move.inputs[0] if move is not None and len(move.inputs[0].uses) == 1 else x
    where = graph.inserting_after(src.node) if src.node is not None else \
        graph.inserting_before(graph.nodes[0])
    with where:
        q = graph.call("quantize", src, name=graph.fresh_name(f"{src.name}.q"),
                       scale=(scale,), zero_point=(zp,), dtype="u8")
    if src is not x:
        with graph.inserting_after(move):
            q = graph.call(move.op, q, name=graph.fresh_name(f"{x.name}.q"), **move.attrs)
    with graph.inserting_after(q.node):
        d = graph.call("dequantize", q, name=graph.fresh_name(f"{x.name}.dq"), scale=(scale,),
                       zero_point=(zp,))
    for user in readers:
        user.replace_input(x, d)
    if src is not x and not x.uses:
        graph.erase_node(move)
    return d


def _dequantized_weight(graph, node, wq, w_scale) -> ir.Value:
    name = node.inputs[1].name
    wv = graph.add_weight(graph.fresh_name(f"{name}.q"), wq)
    with graph.inserting_before(node):
        return graph.call("dequantize", wv, name=graph.fresh_name(f"{name}.dq"),
                          scale=w_scale, axis=0)


def _quantized_bias(graph, node, x_scale: float, w_scale) -> ir.Value:
    """The bias as i32 in units of x_scale * w_scale[n] (what qlinear adds to its sums)."""
    b = graph.weights[node.inputs[2].name]
    unit = np.float32(x_scale) * np.broadcast_to(np.asarray(w_scale, np.float32), b.shape)
    q = np.clip(np.rint(b.astype(np.float64) / unit), -(2**31), 2**31 - 1).astype(np.int32)
    name = node.inputs[2].name
    bv = graph.add_weight(graph.fresh_name(f"{name}.q"), q)
    scales = tuple(float(u) for u in unit)
    with graph.inserting_before(node):
        return graph.call("dequantize", bv, name=graph.fresh_name(f"{name}.dq"),
                          scale=scales, axis=0)


def _other_float(graph: ir.Graph, quantized=()) -> dict[str, int]:
    """Operators left float, by count (not the layers named in `quantized`)."""
    counts: dict[str, int] = {}
    for n in graph.nodes:
        if n.op not in ("quantize", "dequantize", *_HEAVY) and n.name not in quantized:
            counts[n.op] = counts.get(n.op, 0) + 1
    return counts


def _sqnr(graph, qgraph, batches, run=None) -> float | None:
    """10 log10(signal / noise) of output 0, float graph vs the quantized one."""
    run = run or _Runner()
    sig = noise = 0.0
    for batch in batches:
        f = np.asarray(run(graph, *batch)[0], np.float64)
        q = np.asarray(run(qgraph, *batch, opt_level=2)[0], np.float64)
        sig, noise = sig + float(np.sum(f * f)), noise + float(np.sum((f - q) ** 2))
    if noise == 0.0:
        return math.inf
    return 10 * math.log10(sig / noise) if sig > 0 else None


# ---- bfloat16 weights -----------------------------------------------------------------------
@dataclass
class Bf16Report(QuantizationReport):
    """What quantize(dtype="bfloat16") did: the layers given bfloat16 weights, the heavy
    layers left float32 and why, and the SQNR of output 0 against float32."""

    method: str = "bfloat16"

    def __str__(self) -> str:
        lines = [f"bfloat16 weights: {len(self.quantized)} layer(s) converted"]
        lines += [f"  bf16   {q}" for q in self.quantized]
        lines += [f"  float  %{n} ({op}): {why}" for n, op, why in self.kept_float]
        if self.sqnr_db is not None:
            lines.append(f"  SQNR of output 0 on the calibration batches: {self.sqnr_db:.1f} dB")
        return "\n".join(lines)


def quantize_bf16(model, batches: list[tuple], example_inputs=None) -> ir.Graph:
    """dtype="bfloat16": every linear layer (and matmul by a constant 2-D weight) and every
    conv2d with groups=1 whose weight is a graph weight becomes `bf16_linear` /
    `bf16_conv2d` (ir/ops/bf16.py), its weight rounded to bfloat16 and stored two values to
    an i32 word; activations stay float32 (the kernel converts them on entry) and the bias
    float32, so nothing is calibrated: the batches give the example input and the SQNR."""
    example = batches[0] if example_inputs is None else _batches([example_inputs])[0]
    graph = _float_graph(model, example)
    qgraph, report = graph.copy(), Bf16Report()
    for node in list(qgraph.nodes):
        why = _why_float_bf16(qgraph, node)
        if why is None:
            _to_bf16_node(qgraph, node, report)
        elif node.op in _HEAVY:
            report.kept_float.append((node.name, node.op, why))
    drop_unused_weights(qgraph, list(qgraph.params.values()))
    ir.verify(qgraph)
    report.other_float = {op: c for op, c in _other_float(qgraph).items()
                          if op not in ("bf16_linear", "bf16_conv2d")}
    same = [b for b in batches if _shapes(b) == _shapes(example)]
    report.sqnr_db = _sqnr(graph, qgraph, same[:4] or [example])
    qgraph.quantization_report = report
    return qgraph


def _to_bf16_node(graph: ir.Graph, node: ir.Node, report: Bf16Report) -> None:
    """Replace a linear/conv2d by its bfloat16 form under the same value name; the weight
    [out, ...] flattened per output channel (conv: (c, kh, kw) order) and packed."""
    w = graph.weights[node.inputs[1].name]
    name = node.name
    graph.rename(node.output, graph.fresh_name(f"{name}.f32"))
    wv = graph.add_weight(graph.fresh_name(f"{node.inputs[1].name}.bf16"),
                          pack_pairs(w.reshape(w.shape[0], -1)))
    attrs = {}
    if node.op == "conv2d":
        a = node.attrs
        attrs = {"kernel": w.shape[2:], "stride": a["stride"], "pad": a["pad"],
                 "dilation": a["dilation"]}
    with graph.inserting_before(node):
        y = graph.call(f"bf16_{node.op}", node.inputs[0], wv, *node.inputs[2:], name=name,
                       **attrs)
    graph.replace_all_uses_with(node.output, y)
    graph.erase_node(node)
    report.quantized.append(f"%{name} ({node.op} {list(w.shape)})")


def _why_float_bf16(graph: ir.Graph, node: ir.Node) -> str | None:
    if node.op not in ("linear", "conv2d"):
        return "no bfloat16 kernel for this operator yet" if node.op in _HEAVY else "-"
    if node.op == "conv2d" and node.attrs["groups"] != 1:
        return "grouped/depthwise convolution: no bfloat16 kernel for groups > 1 yet"
    x, w = node.inputs[:2]
    if x.type.dtype != "f32" or w.type.dtype != "f32":
        return f"operands are {x.type.dtype} and {w.type.dtype}, not f32"
    if w.kind != "weight" or w.name not in graph.weights:
        return "weight is computed at run time (the bfloat16 kernel packs it once)"
    return None
