"""External data: tensors whose bytes live in files beside the model (how models over
protobuf's 2 GB limit, and many exported LLMs, are stored).

Lamina reads them itself, rather than through `onnx.load`, so that a model file can never
make it read outside the model's folder: a location that is absolute, climbs out with `..`
or resolves (through links) to somewhere else is refused, as is a span past the end of its
file or one whose size does not match the tensor's shape, each naming the tensor.
"""

from __future__ import annotations

import os
from pathlib import PurePath

import numpy as np

from .builder import OnnxImportError


def tensors(proto):
    """Every TensorProto of the model: initialisers and node attributes, in subgraphs too."""
    stack = [proto.graph]
    while stack:
        g = stack.pop()
        yield from g.initializer
        for node in g.node:
            for a in node.attribute:
                if a.HasField("t"):
                    yield a.t
                yield from a.tensors
                if a.HasField("g"):
                    stack.append(a.g)
                stack.extend(a.graphs)


def is_external(tensor) -> bool:
    return tensor.data_location == 1  # TensorProto.EXTERNAL


def refuse_external(proto, where: str) -> None:
    """A model given as bytes or a ModelProto has no folder to read external data from."""
    outside = [t.name for t in tensors(proto) if is_external(t)]
    if outside:
        raise OnnxImportError(f"{where}: tensor(s) {', '.join(outside[:5])} keep their data in "
                              "external files; load the model from its path so that they "
                              "can be found beside it")


def load_external(proto, model_path: str) -> None:
    """Read every external tensor's bytes into the tensor (as raw_data), from files inside
    the folder of `model_path`."""
    base = os.path.realpath(os.path.dirname(os.path.abspath(model_path)))
    for tensor in tensors(proto):
        if is_external(tensor):
            tensor.raw_data = _read_span(tensor, base, model_path)
            del tensor.external_data[:]
            tensor.data_location = 0  # TensorProto.DEFAULT


def _read_span(tensor, base: str, where: str) -> bytes:
    info = {e.key: e.value for e in tensor.external_data}
    what = f"{where}: external data of tensor '{tensor.name}'"
    location = info.get("location", "")
    path = PurePath(location)
    if not location or path.is_absolute() or os.path.isabs(location) or ".." in path.parts:
        raise OnnxImportError(f"{what}: location {location!r} must be a relative path inside "
                              "the model's folder (no absolute paths, no '..')")
    full = os.path.realpath(os.path.join(base, location))
    if os.path.commonpath([base, full]) != base:
        raise OnnxImportError(f"{what}: location {location!r} leads outside the model's "
                              "folder")
    if not os.path.isfile(full):
        raise OnnxImportError(f"{what}: no file {location!r} beside the model")
    try:
        offset, length = int(info.get("offset", 0)), info.get("length")
        length = None if length is None else int(length)
    except ValueError:
        raise OnnxImportError(f"{what}: offset and length must be integers, got "
                              f"{info.get('offset')!r}, {info.get('length')!r}") from None
    size = os.path.getsize(full)
    end = size if length is None else offset + length
    if offset < 0 or end < offset or end > size:
        raise OnnxImportError(f"{what}: bytes {offset}..{end} lie outside {location!r} "
                              f"({size} bytes)")
    want = _expected_bytes(tensor)
    if want is not None and want != end - offset:
        raise OnnxImportError(f"{what}: {end - offset} bytes in {location!r}, but its shape "
                              f"{list(tensor.dims)} needs {want}")
    with open(full, "rb") as f:
        f.seek(offset)
        return f.read(end - offset)


def _expected_bytes(tensor) -> int | None:
    from .builder import stored_dtype

    dt = stored_dtype(tensor.data_type)
    if dt is None or dt.kind in "OSU" or any(d < 0 for d in tensor.dims):
        return None  # strings, unknown types, bad dims: refused when the tensor is read
    return int(np.prod(tensor.dims, dtype=object)) * dt.itemsize
