"""An IRBuilder with the few helpers every kernel needs: types, constants, vector loads and
stores, counted loops, stack variables, intrinsics and horizontal reductions.

Floating-point flags are applied here, in one place: in strict mode (the default) no
fast-math flag is set, so LLVM keeps IEEE semantics (NaN and Inf propagate, no
reassociation); with fast math every float instruction carries `fast`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from llvmlite import ir

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()
VOID = ir.VoidType()
# u8 is an LLVM i8 too: the operations that differ (extension, conversion, comparison) are
# chosen by the IR dtype in the lowerings that accept it (registry.U8_LOWERINGS)
SCALARS = {"f32": F32, "f64": F64, "i32": I32, "i64": I64, "bool": I8, "i8": I8, "u8": I8}
ITEMSIZE = {"f32": 4, "f64": 8, "i32": 4, "i64": 8, "bool": 1, "i8": 1, "u8": 1}


def scalar_type(dtype: str) -> ir.Type:
    return SCALARS[dtype]


def vec_type(dtype_or_type, lanes: int) -> ir.Type:
    """A vector of `lanes` elements, or the scalar itself for one lane."""
    t = SCALARS[dtype_or_type] if isinstance(dtype_or_type, str) else dtype_or_type
    return t if lanes == 1 else ir.VectorType(t, lanes)


def lanes_of(t: ir.Type) -> int:
    return t.count if isinstance(t, ir.VectorType) else 1


def elem_of(t: ir.Type) -> ir.Type:
    return t.element if isinstance(t, ir.VectorType) else t


def is_float(t: ir.Type) -> bool:
    return isinstance(elem_of(t), (ir.FloatType, ir.DoubleType))


def const(t: ir.Type, value) -> ir.Constant:
    """A constant of scalar or vector type `t` (vectors are splats)."""
    if isinstance(t, ir.VectorType):
        return ir.Constant(t, [_scalar_const(t.element, value)] * t.count)
    return _scalar_const(t, value)


def _scalar_const(t, value):
    if isinstance(t, ir.IntType):
        return ir.Constant(t, int(value))
    return ir.Constant(t, float(value))


def mangle(t: ir.Type) -> str:
    """LLVM's overload suffix for a type: f32, v16f32, i64, p0."""
    if isinstance(t, ir.VectorType):
        return f"v{t.count}{mangle(t.element)}"
    if isinstance(t, ir.PointerType):
        return "p0"
    if isinstance(t, ir.FloatType):
        return "f32"
    if isinstance(t, ir.DoubleType):
        return "f64"
    return f"i{t.width}"


class KBuilder(ir.IRBuilder):
    """IRBuilder for kernels; `fmf` are the fast-math flags put on float instructions."""

    def __init__(self, block=None, fmf: tuple[str, ...] = ()):
        super().__init__(block)
        self.fmf = fmf

    # ---- float ops with the mode's flags -------------------------------------------------
    def fadd(self, a, b, name="", flags=None):
        return super().fadd(a, b, name, flags=self.fmf if flags is None else flags)

    def fsub(self, a, b, name="", flags=None):
        return super().fsub(a, b, name, flags=self.fmf if flags is None else flags)

    def fmul(self, a, b, name="", flags=None):
        return super().fmul(a, b, name, flags=self.fmf if flags is None else flags)

    def fdiv(self, a, b, name="", flags=None):
        return super().fdiv(a, b, name, flags=self.fmf if flags is None else flags)

    def fcmp(self, op: str, a, b, name=""):
        """Ordered comparison ('<', '>=', '==', ...; 'uno' tests for NaN)."""
        if op in ("uno", "ord"):
            return super().fcmp_unordered(op, a, b, name, flags=self.fmf)
        return super().fcmp_ordered(op, a, b, name, flags=self.fmf)

    # ---- constants and vectors ------------------------------------------------------------
    @staticmethod
    def i64(v) -> ir.Constant:
        return ir.Constant(I64, int(v))

    @staticmethod
    def i32(v) -> ir.Constant:
        return ir.Constant(I32, int(v))

    def splat(self, value, lanes: int):
        """Broadcast a scalar value into `lanes` lanes (the scalar itself for one lane)."""
        if lanes == 1:
            return value
        if isinstance(value, ir.Constant) and not isinstance(value.type, ir.VectorType):
            return ir.Constant(ir.VectorType(value.type, lanes), [value] * lanes)
        vt = ir.VectorType(value.type, 1)
        one = self.insert_element(ir.Constant(vt, ir.Undefined), value, self.i32(0))
        return self.shuffle_vector(one, ir.Constant(vt, ir.Undefined),
                                   ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))

    def gep(self, ptr, indices, inbounds=False, name="", source_etype=None):
        return super().gep(ptr, indices, inbounds, name, source_etype)

    def at(self, ptr, index, elem: ir.Type):
        """Address of element `index` (an i64 value or int) of type `elem` from `ptr`."""
        if isinstance(index, int):
            if index == 0:
                return ptr
            index = self.i64(index)
        return self.gep(ptr, [index], inbounds=True, source_etype=elem)

    def vload(self, ptr, index, elem: ir.Type, lanes: int = 1):
        """Load `lanes` consecutive elements (unaligned: element alignment only)."""
        t = vec_type(elem, lanes)
        return self.load(self.at(ptr, index, elem), typ=t, align=_size(elem))

    def vstore(self, value, ptr, index):
        elem = elem_of(value.type)
        self.store(value, self.at(ptr, index, elem), align=_size(elem))

    def gather(self, base, index, elem: ir.Type, mask=None, passthru=None):
        """Vector load of base[index[i]] per lane (llvm.masked.gather; masked-off lanes get
        `passthru`, default 0)."""
        lanes = index.type.count
        vt = ir.VectorType(elem, lanes)
        ptrs = self.gep(base, [index], inbounds=True, source_etype=elem)
        ptrs.type = ir.VectorType(PTR, lanes)  # llvmlite types a vector GEP as a scalar ptr
        mask = const(ir.VectorType(I1, lanes), 1) if mask is None else mask
        passthru = const(vt, 0) if passthru is None else passthru
        return self.intrinsic("masked.gather", [ptrs, self.i32(_size(elem)), mask, passthru],
                              ret=vt, overload=[vt, ptrs.type])

    def masked_load(self, ptr, index, elem: ir.Type, lanes: int, mask, passthru=None):
        vt = ir.VectorType(elem, lanes)
        passthru = const(vt, 0) if passthru is None else passthru
        return self.intrinsic("masked.load", [self.at(ptr, index, elem), self.i32(_size(elem)),
                                              mask, passthru], ret=vt, overload=[vt, PTR])

    def masked_store(self, value, ptr, index, mask):
        elem = value.type.element
        self.intrinsic("masked.store", [value, self.at(ptr, index, elem),
                                        self.i32(_size(elem)), mask],
                       ret=VOID, overload=[value.type, PTR])

    def lane_mask(self, limit, first: int, lanes: int):
        """Lanes first, first+1, ... that are below `limit` (an i64 value)."""
        iota = ir.Constant(ir.VectorType(I64, lanes), list(range(first, first + lanes)))
        return self.icmp_signed("<", iota, self.splat(limit, lanes))

    def min_(self, x, n):
        """Signed minimum of an i64 value and an int or value."""
        c = self.i64(n) if isinstance(n, int) else n
        return self.select(self.icmp_signed("<", x, c), x, c)

    def ceil_div(self, x, n: int):
        return self.udiv(self.add(x, self.i64(n - 1)), self.i64(n))

    # ---- control flow ---------------------------------------------------------------------
    @contextlib.contextmanager
    def loop(self, start, stop, step=1, name="i", unroll=True) -> Iterator[ir.Value]:
        """for (i = start; i < stop; i += step) — signed i64 bounds, body in the with-block.

        unroll=False forbids LLVM to unroll it: outer loops with constant trip counts would
        otherwise be unrolled whole, multiplying code size and compile time."""
        start = self.i64(start) if isinstance(start, int) else start
        stop = self.i64(stop) if isinstance(stop, int) else stop
        step = self.i64(step) if isinstance(step, int) else step
        fn = self.function
        pre = self.block
        head = fn.append_basic_block(f"{name}.head")
        body = fn.append_basic_block(f"{name}.body")
        done = fn.append_basic_block(f"{name}.done")
        self.branch(head)
        self.position_at_end(head)
        i = self.phi(I64, name)
        i.add_incoming(start, pre)
        self.cbranch(self.icmp_signed("<", i, stop), body, done)
        self.position_at_end(body)
        yield i
        nxt = self.add(i, step, name=f"{name}.next", flags=("nsw",))
        i.add_incoming(nxt, self.block)
        latch = self.branch(head)
        if not unroll:
            latch.set_metadata("llvm.loop", _no_unroll(self.module))
        self.position_at_end(done)

    def var(self, t: ir.Type, init=None, name="v"):
        """A stack slot in the entry block (SROA turns it into registers)."""
        with self.goto_entry_block():
            slot = self.alloca(t, name=name)
        if init is not None:
            self.store(init, slot)
        return slot

    def get(self, slot, t: ir.Type):
        return self.load(slot, typ=t)

    # ---- intrinsics and calls -------------------------------------------------------------
    def intrinsic(self, name: str, args, ret: ir.Type | None = None, overload=None):
        """Call llvm.`name` overloaded on `overload` types (default: the first argument's)."""
        tys = overload if overload is not None else [args[0].type]
        full = "llvm." + name + "".join("." + mangle(t) for t in tys)
        ret = args[0].type if ret is None else ret
        fn = declare(self.module, full, ret, [a.type for a in args])
        return self.call(fn, args)

    def fmuladd(self, a, b, c):
        """a * b + c, fused where the target has FMA (llvm.fmuladd)."""
        return self.intrinsic("fmuladd", [a, b, c])

    def poly(self, x, coeffs):
        """Horner evaluation of coeffs[0] * x^n + ... + coeffs[n]."""
        acc = const(x.type, coeffs[0])
        for c in coeffs[1:]:
            acc = self.fmuladd(acc, x, const(x.type, c))
        return acc

    def hreduce(self, v, combine):
        """Reduce a vector to a scalar by halving with shuffles (a fixed, deterministic tree)."""
        n = lanes_of(v.type)
        while n > 1:
            n //= 2
            lo = self.shuffle_vector(v, v, ir.Constant(ir.VectorType(I32, n), list(range(n))))
            hi = self.shuffle_vector(v, v, ir.Constant(ir.VectorType(I32, n),
                                                       list(range(n, 2 * n))))
            v = combine(lo, hi)
            if n == 1:
                return self.extract_element(v, self.i32(0))
        return v


def _no_unroll(module: ir.Module):
    """A fresh loop id (self-referential, as LLVM wants) carrying llvm.loop.unroll.disable."""
    disable = module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])
    loop_id = module.add_metadata([disable])
    loop_id.operands = (loop_id, disable)
    return loop_id


def declare(module: ir.Module, name: str, ret: ir.Type, args) -> ir.Function:
    """The function `name` in `module`, declared on first use."""
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, list(args)), name)
    return fn


def _size(elem: ir.Type) -> int:
    if isinstance(elem, ir.DoubleType):
        return 8
    if isinstance(elem, ir.FloatType):
        return 4
    return max(1, elem.width // 8)
