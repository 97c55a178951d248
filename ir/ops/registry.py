"""The operator registry: each operator is declared once, here read by everything else.

An `OpDef` holds an operator's attributes, its shape/dtype inference, its numpy
reference semantics, its fusion kind and the algebraic facts passes may ask.
Tracing, verification, printing, interpretation, passes and code generation all
look operators up with `get(name)`; there is no other list of operators.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidAttributeError, UnknownOpError
from ..tensor_type import TensorType


class Fusion(enum.IntEnum):
    """TVM's fusion lattice: what may fuse with what, from most to least fusable."""

    ELEMENTWISE = 0  # out[i] = f(in[i]) with equal shapes
    BROADCAST = 1  # elementwise after numpy broadcasting
    INJECTIVE = 2  # each output element reads one input element (reshape, transpose, slice)
    REDUCTION = 3  # sum, mean, max over axes
    COMPLEX = 4  # conv, matmul: an elementwise epilogue can fuse into it
    OPAQUE = 5  # nothing fuses


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED: Any = _Required()

_KINDS: dict[str, Callable[[Any], Any]] = {}


def _kind(name):
    def deco(fn):
        _KINDS[name] = fn
        return fn

    return deco


@_kind("int")
def _int(v):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError
    if not -(2**63) <= v < 2**63:  # shapes, axes and sizes are int64 in every backend
        raise ValueError
    return int(v)


@_kind("float")
def _float(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError
    return float(v)


@_kind("bool")
def _bool(v):
    if not isinstance(v, bool):
        raise TypeError
    return v


@_kind("str")
def _str(v):
    if not isinstance(v, str):
        raise TypeError
    return v


@_kind("ints")
def _ints(v):
    if isinstance(v, (str, bytes)) or not isinstance(v, Sequence):
        raise TypeError
    return tuple(_int(x) for x in v)


@_kind("floats")
def _floats(v):
    if isinstance(v, (str, bytes)) or not isinstance(v, Sequence):
        raise TypeError
    return tuple(_float(x) for x in v)


def define_graph_kind(graph_class: type) -> None:
    """Install the check for graph-valued attributes; `ir.graph` calls it with its Graph
    class (the registry cannot import Graph: the graph module imports the registry)."""

    def check(v):
        if not isinstance(v, graph_class):
            raise TypeError
        return v  # the same object: a node's attrs compare by identity once normalised

    _KINDS["graph"] = check


ATTRIBUTE_KINDS = ("int", "float", "bool", "str", "ints", "floats", "graph")


def attr_key(value):
    """A hashable, exact stand-in for an attribute value, for CSE and default comparison:
    a float by its repr (so -0.0 and nan are told apart), a graph by its printed text."""
    if isinstance(value, tuple):
        return tuple(attr_key(v) for v in value)
    if isinstance(value, float):
        return ("float", repr(value))
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return ("graph", str(value))


@dataclass(frozen=True)
class Attr:
    """One attribute: its kind (int, float, bool, str, ints, floats, graph), default and
    validity rule."""

    kind: str
    default: Any = REQUIRED
    check: Callable[[Any], bool] | None = None
    rule: str = ""  # what `check` requires, said in words for error messages

    def normalize(self, value):
        return _KINDS[self.kind](value)


@dataclass(kw_only=True)
class OpDef:
    """Everything the compiler knows about one operator, declared with keyword fields."""

    name: str
    infer: Callable[..., TensorType | tuple[TensorType, ...]]  # (*input_types, **attrs)
    compute: Callable[..., Any]  # (*arrays, **attrs) -> array | tuple of arrays
    attrs: dict[str, Attr] = field(default_factory=dict)
    arity: tuple[int, int | None] = (1, 1)  # min and max inputs; None: variadic
    fusion: Fusion = Fusion.OPAQUE
    doc: str = ""
    commutative: bool = False
    identity: float | None = None  # x op identity == x, exactly
    grad: Callable | None = None  # reverse-mode rule, filled in by the training issue

    def __post_init__(self):
        assert all(a.kind in ATTRIBUTE_KINDS for a in self.attrs.values()), self.name

    def check_attrs(self, attrs: dict, where: str = "") -> dict:
        """Validated, normalised attributes with defaults filled in, sorted by name."""
        where = where or self.name
        unknown = set(attrs) - set(self.attrs)
        if unknown:
            raise InvalidAttributeError(
                f"{where}: unknown attribute(s) {sorted(unknown)} for {self.name}; "
                f"it takes {sorted(self.attrs) or 'none'}"
            )
        out = {}
        for key in sorted(self.attrs):
            spec = self.attrs[key]
            if key not in attrs:
                if spec.default is REQUIRED:
                    raise InvalidAttributeError(f"{where}: missing required attribute '{key}'")
                out[key] = spec.default
                continue
            try:
                value = spec.normalize(attrs[key])
            except (TypeError, ValueError):
                range_ = " (64-bit)" if spec.kind in ("int", "ints") else ""
                raise InvalidAttributeError(
                    f"{where}: attribute '{key}' must be {spec.kind}{range_}, got {attrs[key]!r}"
                ) from None
            if spec.check is not None and not spec.check(value):
                raise InvalidAttributeError(
                    f"{where}: attribute {key}={value!r} is invalid: {spec.rule or 'check failed'}"
                )
            out[key] = value
        return out

    def check_arity(self, n: int, where: str = "") -> None:
        lo, hi = self.arity
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else f"{lo}..{hi if hi is not None else ''}"
            raise InvalidAttributeError(
                f"{where or self.name}: {self.name} takes {want} inputs, got {n}")

    def infer_types(self, types: Sequence[TensorType], attrs: dict) -> tuple[TensorType, ...]:
        out = self.infer(*types, **attrs)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)


OPERATORS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    if op.name in OPERATORS:
        raise ValueError(f"operator {op.name} registered twice")
    OPERATORS[op.name] = op
    return op


def get(name: str) -> OpDef:
    try:
        return OPERATORS[name]
    except KeyError:
        raise UnknownOpError(f"unknown operator '{name}'") from None


def names() -> list[str]:
    return sorted(OPERATORS)


def all_ops() -> list[OpDef]:
    return [OPERATORS[n] for n in names()]
