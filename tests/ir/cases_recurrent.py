"""Cases for the recurrent operators (see cases.py): lstm, gru and rnn against onnxruntime's
LSTM, GRU and RNN operators on the same tensors."""

from __future__ import annotations

from .cases import N, case, randn, uniform

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
ONNX = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def recurrent_case(op: str, variant: str, t: int, batch: int, inp: int, hidden: int,
                   direction: str = "forward", states: int = 0, runtime_weights=False,
                   **attrs):
    """One case: weights in (-0.8, 0.8) so that gates saturate as well as not; `states`
    initial states given as inputs (the others are zeros)."""
    d, g = 2 if direction == "bidirectional" else 1, GATES[op]
    args = {"x": randn(t, batch, inp), "w": uniform(-0.8, 0.8, d, g * hidden, inp),
            "r": uniform(-0.8, 0.8, d, g * hidden, hidden),
            "b": uniform(-0.5, 0.5, d, 2 * g * hidden)}
    names = ["h0", "c0"][:states]
    for name in names:
        args[name] = randn(d, batch, hidden)
    outs = ["y0", "y1", "y2"] if op == "lstm" else ["y0", "y1"]
    onnx_attrs = {"hidden_size": hidden, "direction": direction}
    if "linear_before_reset" in attrs:
        onnx_attrs["linear_before_reset"] = int(attrs["linear_before_reset"])
    node = N(ONNX[op], "x", "w", "r", "b", *(["", *names] if names else []), out=outs,
             **onnx_attrs)
    case(op, variant, args, node, attrs={"hidden_size": hidden, "direction": direction,
                                         **attrs},
         weights=() if runtime_weights else ("w", "r", "b"), rtol=1e-5, atol=1e-5)


recurrent_case("lstm", "forward", 5, 3, 4, 6)
recurrent_case("lstm", "batch1-h17-states", 4, 1, 5, 17, states=2)
recurrent_case("lstm", "h0-only-reverse", 3, 2, 3, 5, "reverse", states=1)
recurrent_case("lstm", "bidirectional-states", 4, 3, 6, 9, "bidirectional", states=2)
recurrent_case("lstm", "runtime-weights", 3, 2, 4, 5, runtime_weights=True)
for _lbr in (True, False):
    _tag = "lbr" if _lbr else "nolbr"
    recurrent_case("gru", f"forward-{_tag}", 5, 3, 4, 6, linear_before_reset=_lbr)
    recurrent_case("gru", f"bidirectional-states-{_tag}", 4, 2, 5, 17, "bidirectional",
                   states=1, linear_before_reset=_lbr)
    recurrent_case("gru", f"reverse-batch1-{_tag}", 3, 1, 3, 7, "reverse",
                   linear_before_reset=_lbr)
recurrent_case("rnn", "forward", 5, 3, 4, 6)
recurrent_case("rnn", "bidirectional-states", 4, 2, 3, 17, "bidirectional", states=1)
recurrent_case("rnn", "seq1-batch1", 1, 1, 2, 3)
