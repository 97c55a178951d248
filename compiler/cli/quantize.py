"""The quantize verb: post-training int8 quantization of MODEL (compiler/quantize.py), written
as a Lamina graph (.npz) or a QDQ ONNX model, with the quantization report printed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import ir
from ir.errors import OptionError

from ..frontends.onnx import save_onnx
from ..quantize import METHODS, quantize
from ..tools.runner import example_inputs
from .common import (
    MODEL_HELP,
    Formatter,
    ModelError,
    amount,
    count,
    load_graph,
    out,
    progress_enabled,
    writing,
)

FORMATS = (".npz", ".onnx")


def cmd_quantize(args) -> None:
    output = _output(args.output)
    graph, inputs = load_graph(args)
    if args.random is not None:
        batches = [tuple(example_inputs(graph, (), seed=args.seed + i))
                   for i in range(args.random)]
    else:
        batches = calibration_batches(args.calibration, graph)
    q = quantize(graph, batches, per_channel=not args.per_tensor, method=args.method,
                 percentile=args.percentile, example_inputs=tuple(inputs),
                 progress=progress_enabled(args))
    with writing("-o", args.output):
        if output.suffix == ".onnx":
            save_onnx(q, str(output))
        else:
            ir.save(q, str(output))
    out(str(q.quantization_report))
    out(f"calibrated on {len(batches)} batch(es); wrote {output}")


def _output(given: str) -> Path:
    path = Path(given)
    if path.suffix not in FORMATS:
        raise OptionError(f"-o {given}: name a .npz file (the quantized Lamina graph: IR text "
                          "and weights, usable as MODEL) or an .onnx file (QDQ ONNX)")
    if path.is_dir():
        raise OptionError(f"-o {given}: is a directory; name a file")
    return path


def calibration_batches(path: str, graph: ir.Graph) -> list[tuple[np.ndarray, ...]]:
    """The batches a calibration file holds, shaped like the graph's inputs.

    An .npz whose keys are the graph's input names holds one stack of samples per input
    ([n, *sample], cut into batches of the input's leading size); otherwise its arrays, in
    stored order, are batches (several inputs: groups of consecutive arrays, one per input)
    or, for a one-input model, stacks of samples cut into batches. A .npy is one stack."""
    arrays = _read(path)
    names = [v.name for v in graph.inputs]
    types = [v.type for v in graph.inputs]
    if set(names) <= set(arrays) and len(names) > 0:
        cut = [_cut(arrays[n], t, f"{path}[{n}]") for n, t in zip(names, types)]
        if len({len(c) for c in cut}) != 1:
            raise ModelError(f"--calibration {path}: the inputs' arrays give different "
                             f"numbers of batches: {', '.join(str(len(c)) for c in cut)}")
        batches = list(zip(*cut))
    elif len(types) == 1:
        batches = [(b,) for key, a in arrays.items()
                   for b in _cut(a, types[0], f"{path}[{key}]")]
    else:
        items = list(arrays.items())
        if len(items) % len(types):
            raise ModelError(f"--calibration {path}: {len(items)} arrays for a model with "
                             f"{len(types)} inputs; store whole batches, one array per input, "
                             "or one stack per input under the input's name "
                             f"({', '.join(names)})")
        batches = [tuple(_fit(a, t, f"{path}[{key}]") for (key, a), t in
                         zip(items[i:i + len(types)], types))
                   for i in range(0, len(items), len(types))]
    if not batches:
        raise ModelError(f"--calibration {path}: holds no whole batch for inputs "
                         f"{', '.join(str(t) for t in types)}")
    return batches


def _read(path: str) -> dict[str, np.ndarray]:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ModelError(f"--calibration {path}: {e}") from None
    if isinstance(data, np.ndarray):
        return {"array": data}
    with data:
        return {k: data[k] for k in data.files}


def _fit(a: np.ndarray, t: ir.TensorType, where: str) -> np.ndarray:
    """One batch: the input's shape exactly, converted to its dtype (a float array to f32)."""
    if a.shape != t.shape:
        raise ModelError(f"--calibration {where}: shape {list(a.shape)} does not fit input "
                         f"{t}")
    if a.dtype.kind != np.dtype(t.np_dtype).kind:
        raise ModelError(f"--calibration {where}: {a.dtype} values for input {t}")
    return a.astype(t.np_dtype, copy=False)


def _cut(a: np.ndarray, t: ir.TensorType, where: str) -> list[np.ndarray]:
    """A batch, or a stack of samples cut into batches of the input's leading size (a last
    shorter batch is dropped: the graph's shapes are fixed)."""
    if a.shape == t.shape or not t.shape or a.shape[1:] != t.shape[1:]:
        return [_fit(a, t, where)]
    n = t.shape[0]
    return [_fit(a[i:i + n], t, where) for i in range(0, a.shape[0] - n + 1, n)]


def add_quantize(sub) -> None:
    q = sub.add_parser(
        "quantize", help="post-training int8: calibrate, write the quantized model and report",
        description="Quantize MODEL to int8 after training: run it on calibration batches "
                    "(the reference interpreter records each activation's range), then write "
                    "the graph with explicit quantize/dequantize operators -- weights i8 per "
                    "output channel, activations u8 -- and print the quantization report: "
                    "which layers became int8 and which stayed float, and why. -o FILE.npz "
                    "writes a Lamina graph (IR text and weights: a MODEL for every other "
                    "verb, whose compile folds each layer into its int8 kernel); -o "
                    "FILE.onnx writes QDQ ONNX (onnxruntime's quantized format).\n"
                    "--calibration takes an .npz: under each input's name a stack of samples "
                    "cut into batches of the input's size, or else arrays in stored order, "
                    "each a batch (or, for a one-input model, a stack of samples); an .npy "
                    "is one stack. --random N calibrates on N seeded random batches instead "
                    "(a smoke test: the ranges will not be the real data's).",
        epilog="examples:\n"
               "  lamina quantize examples/small_cnn.py:build --calibration data.npz -o q.npz\n"
               "  lamina quantize model.onnx --random 8 --method percentile -o q.onnx\n"
               "  lamina run q.npz",
        formatter_class=Formatter)
    q.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    data = q.add_mutually_exclusive_group(required=True)
    data.add_argument("--calibration", metavar="FILE.npz",
                      help="calibration data (see above)")
    data.add_argument("--random", type=count(1), metavar="N",
                      help="calibrate on N seeded random batches shaped like the inputs")
    q.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="where to write the quantized model: .npz (Lamina) or .onnx (QDQ)")
    q.add_argument("--method", choices=METHODS, default="minmax",
                   help="how an activation's range is chosen (default: minmax)")
    q.add_argument("--percentile", type=amount(positive=True), default=99.99,
                   help="the percentile kept by --method percentile (default 99.99)")
    q.add_argument("--per-tensor", action="store_true",
                   help="one weight scale per layer instead of one per output channel")
    q.add_argument("--seed", type=count(0), default=0, help="seed of --random (default 0)")
    q.set_defaults(fn=cmd_quantize)
