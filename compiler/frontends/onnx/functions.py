"""Operators ONNX defines as functions of other operators (Celu, GroupNormalization,
Attention, NegativeLogLikelihoodLoss, ...): when the operator table has no entry for one, the
importer expands the function from the operator's schema, for the node's attributes and input
types, and imports its nodes instead, each through the table."""

from __future__ import annotations

import numpy as np

from .builder import OnnxNode


def function_body(proto, node: OnnxNode, env: dict, opset: int):
    """(nodes with their used-output flags, opset) of the function ONNX defines an operator
    by, its names made unique and its attribute references resolved; None when the
    operator has no function."""
    import onnx

    try:
        schema = onnx.defs.get_schema(proto.op_type, opset, "")
    except Exception:
        return None
    plain, contextual = (_versions(vs, opset) for vs in (
        schema.function_opset_versions, schema.context_dependent_function_opset_versions))
    if not plain and not contextual:
        return None
    full = onnx.NodeProto()
    full.CopyFrom(proto)
    given = {a.name for a in proto.attribute}
    for name, spec in schema.attributes.items():
        if name not in given and spec.default_value and spec.default_value.name:
            full.attribute.append(spec.default_value)
    fn = onnx.FunctionProto()
    if plain:
        fn.ParseFromString(schema.get_function_with_opset_version(max(plain)))
    else:
        types = [_type_proto(env[i]).SerializeToString() if i and i in env else
                 onnx.TypeProto().SerializeToString() for i in proto.input]
        fn.ParseFromString(schema.get_context_dependent_function_with_opset_version(
            max(contextual), full.SerializeToString(), types))
    names = {"": ""}
    names.update({f: (proto.input[k] if k < len(proto.input) else "")
                  for k, f in enumerate(fn.input)})
    names.update({f: proto.output[k] for k, f in enumerate(fn.output)
                  if k < len(proto.output) and proto.output[k]})
    prefix = f"{node.name}::"
    attrs = {a.name: a for a in full.attribute}
    inner = []

    def rename(name: str) -> str:
        return names.get(name, prefix + name)

    for k, f in enumerate(fn.node):
        m = onnx.NodeProto()
        m.CopyFrom(f)
        m.name = f"{prefix}{f.name or k}"
        _rename(m, rename)
        kept = []
        for a in m.attribute:
            if a.ref_attr_name:
                if a.ref_attr_name not in attrs:
                    continue  # not given: the inner operator's default applies
                ref = onnx.AttributeProto()
                ref.CopyFrom(attrs[a.ref_attr_name])
                ref.name = a.name
                a = ref
            kept.append(a)
        del m.attribute[:]
        m.attribute.extend(kept)
        inner.append(m)
    wanted = {o for o, u in zip(proto.output, node.used) if o and u}
    read = set(wanted)
    for m in reversed(inner):
        read.update(m.input)
    version = {o.domain: o.version for o in fn.opset_import}
    return [(m, [o in read for o in m.output]) for m in inner], \
        int(version.get("", version.get("ai.onnx", opset)))


def has_function(op_type: str) -> bool:
    """Whether ONNX defines `op_type` (default domain) as a function of other operators."""
    import onnx

    try:
        schema = onnx.defs.get_schema(op_type, "")
    except Exception:
        return False
    return bool(list(schema.function_opset_versions)
                or list(schema.context_dependent_function_opset_versions))


def _rename(node, rename) -> None:
    """Rename a node's inputs and outputs, and every name inside its subgraphs."""
    node.input[:] = [rename(i) for i in node.input]
    node.output[:] = [rename(o) for o in node.output]
    for a in node.attribute:
        for g in [a.g] if a.HasField("g") else list(a.graphs):
            for v in [*g.input, *g.output]:
                v.name = rename(v.name)
            for t in g.initializer:
                t.name = rename(t.name)
            for m in g.node:
                _rename(m, rename)


def _versions(versions, opset: int) -> list[int]:
    """The function versions usable at `opset`: those up to it, else the oldest (a function
    added after the operator itself, with the operator unchanged)."""
    versions = list(versions)
    return [v for v in versions if v <= opset] or sorted(versions)[:1]


def _type_proto(x):
    import onnx

    dt = x.dtype if isinstance(x, np.ndarray) else x.type.np_dtype
    return onnx.helper.make_tensor_type_proto(onnx.helper.np_dtype_to_tensor_dtype(dt),
                                              list(x.shape))
