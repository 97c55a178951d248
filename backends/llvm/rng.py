"""numpy's random stream, bit for bit: SeedSequence -> PCG64 -> Generator.random().

Training-mode dropout in the reference draws its mask from np.random.default_rng(entropy)
.random(shape); so does the compiled code, so masks (and results) are identical.
- SeedSequence(entropy) with a pool of 4 uint32 words: the entropy's 32-bit words are
  hash-mixed into the pool (the hash constants advance the same way whatever the values, so
  they are compile-time constants here), then 8 words are drawn: PCG64's 128-bit seed and
  increment.
- PCG64 (XSL-RR): state = state * M + inc (128-bit), output rotr64(hi ^ lo, state >> 122).
- random(): (next64 >> 11) * 2**-53, one draw per element in C order.
The draws are sequential, so the phase that makes the mask runs on one thread.
"""

from __future__ import annotations

from llvmlite import ir as llir

from .builder import F64, I32, I64, KBuilder

M32 = 0xFFFFFFFF
INIT_A, MULT_A, INIT_B, MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
MIX_L, MIX_R = 0xCA01F9DD, 0x4973F715
PCG_MULT = (2549297995355413924 << 64) + 4865540595714422341
I128 = llir.IntType(128)


def words(n: int) -> list[int]:
    """numpy's _int_to_uint32_array: little-endian 32-bit words, [0] for zero."""
    out = [] if n else [0]
    while n:
        out.append(n & M32)
        n >>= 32
    return out


class _Hash:
    """SeedSequence's hashmix, whose constant advances per call (a compile-time sequence)."""

    def __init__(self, b: KBuilder, init: int, mult: int):
        self.b, self.const, self.mult = b, init, mult

    def __call__(self, v):
        b = self.b
        v = b.xor(v, b.i32(_signed(self.const)))
        self.const = (self.const * self.mult) & M32
        v = b.mul(v, b.i32(_signed(self.const)))
        return b.xor(v, b.lshr(v, b.i32(16)))


def _signed(u32: int) -> int:
    return u32 - (1 << 32) if u32 >= 1 << 31 else u32


def _mix(b, x, y):
    r = b.sub(b.mul(b.i32(_signed(MIX_L)), x), b.mul(b.i32(_signed(MIX_R)), y))
    return b.xor(r, b.lshr(r, b.i32(16)))


def pcg64_from_entropy(b: KBuilder, entropy: list) -> tuple[llir.Value, llir.Value]:
    """(state, inc) of PCG64(SeedSequence(entropy)) after seeding; `entropy` holds at most 4
    i32 values (missing words count as 0, as numpy pads the pool with hashmix(0))."""
    assert len(entropy) <= 4
    ent = list(entropy) + [b.i32(0)] * (4 - len(entropy))
    hashmix = _Hash(b, INIT_A, MULT_A)
    pool = [hashmix(ent[i]) for i in range(4)]
    for src in range(4):
        for dst in range(4):
            if src != dst:
                pool[dst] = _mix(b, pool[dst], hashmix(pool[src]))
    draw = _Hash(b, INIT_B, MULT_B)
    w = [b.zext(draw(pool[i % 4]), I64) for i in range(8)]
    val = [b.or_(w[2 * k], b.shl(w[2 * k + 1], b.i64(32))) for k in range(4)]

    def u128(hi, lo):
        return b.or_(b.shl(b.zext(hi, I128), llir.Constant(I128, 64)), b.zext(lo, I128))

    seed, seq = u128(val[0], val[1]), u128(val[2], val[3])
    inc = b.or_(b.shl(seq, llir.Constant(I128, 1)), llir.Constant(I128, 1))
    state = _step(b, b.add(inc, seed), inc)  # state = 0; step; += seed; step
    return state, inc


def _step(b, state, inc):
    return b.add(b.mul(state, llir.Constant(I128, PCG_MULT)), inc)


def next_double(b: KBuilder, state_slot, inc):
    """Advance the state in `state_slot` and return the next uniform double in [0, 1)."""
    state = _step(b, b.load(state_slot, typ=I128), inc)
    b.store(state, state_slot)
    hi = b.trunc(b.lshr(state, llir.Constant(I128, 64)), I64)
    x = b.xor(hi, b.trunc(state, I64))
    rot = b.trunc(b.lshr(state, llir.Constant(I128, 122)), I64)
    out = b.intrinsic("fshr", [x, x, rot])  # rotate right
    return b.fmul(b.uitofp(b.lshr(out, b.i64(11)), F64),
                  llir.Constant(F64, 1.0 / 9007199254740992.0))


def const_words(values: list[int]) -> list:
    return [llir.Constant(I32, _signed(v)) for v in values]
