"""Cases for the 3-D convolution and pooling operators (see cases.py)."""

from __future__ import annotations

from .cases import N, case, randn


def _window(attrs: dict, pool: bool = False) -> dict:
    """ONNX attributes for Lamina's 3-D stride/pad/dilation (pads: begins then ends in both)."""
    out = {"strides": list(attrs.get("stride", (1, 1, 1))),
           "pads": list(attrs.get("pad", (0,) * 6)),
           "dilations": list(attrs.get("dilation", (1, 1, 1)))}
    if pool:
        out["kernel_shape"] = list(attrs["kernel"])
        out["ceil_mode"] = int(attrs.get("ceil_mode", False))
    return out


CONV = [  # variant, x shape, weight shape, bias, attrs
    ("plain", (1, 3, 5, 6, 5), (4, 3, 3, 3, 3), False, {}),
    ("pad_bias", (2, 2, 4, 5, 6), (3, 2, 3, 3, 2), True, {"pad": (1, 1, 0, 1, 1, 1)}),
    ("stride_dilation", (1, 2, 9, 7, 8), (3, 2, 2, 3, 2), True,
     {"stride": (2, 1, 3), "dilation": (3, 2, 1), "pad": (2, 0, 1, 0, 1, 1)}),
    ("groups2", (2, 4, 5, 5, 4), (6, 2, 3, 1, 3), True, {"groups": 2, "stride": (1, 2, 1)}),
    ("depthwise_kd1", (1, 3, 4, 6, 6), (3, 1, 1, 3, 3), False, {"groups": 3}),
]
for _name, _xs, _ws, _bias, _attrs in CONV:
    _args = {"x": randn(*_xs), "w": randn(*_ws, scale=0.5)}
    if _bias:
        _args["b"] = randn(_ws[0])
    case("conv3d", _name, _args,
         N("Conv", *_args, group=_attrs.get("groups", 1), kernel_shape=list(_ws[2:]),
           **_window(_attrs)),
         attrs=_attrs, weights=tuple(k for k in _args if k != "x"), rtol=1e-5, atol=1e-5)

CONV_T = [  # variant, x shape (the result), dy shape, weight shape, attrs
    ("plain", (1, 2, 5, 5, 4), (1, 3, 3, 3, 2), (3, 2, 3, 3, 3), {}),
    ("stride_pad", (2, 2, 7, 6, 5), (2, 3, 4, 3, 3), (3, 2, 3, 2, 3),
     {"stride": (2, 2, 2), "pad": (1, 0, 1, 1, 1, 1)}),
    ("groups_dilation", (1, 4, 8, 6, 5), (1, 4, 3, 4, 3), (4, 2, 2, 3, 3),
     {"groups": 2, "stride": (3, 1, 1), "dilation": (2, 1, 1), "pad": (0, 0, 0, 1, 0, 0)}),
]
for _name, _xs, _dys, _ws, _attrs in CONV_T:
    _s, _p, _d = (_attrs.get(k, dflt) for k, dflt in
                  (("stride", (1, 1, 1)), ("pad", (0,) * 6), ("dilation", (1, 1, 1))))
    _full = [(_dys[2 + i] - 1) * _s[i] + (_ws[2 + i] - 1) * _d[i] + 1 - _p[i] - _p[i + 3]
             for i in range(3)]
    case("conv3d_grad_input", _name, {"dy": randn(*_dys), "w": randn(*_ws)},
         N("ConvTranspose", "dy", "w", strides=list(_s), pads=list(_p), dilations=list(_d),
           group=_attrs.get("groups", 1), kernel_shape=list(_ws[2:]),
           output_padding=[_xs[2 + i] - _full[i] for i in range(3)]),
         attrs={**_attrs, "shape": _xs}, weights=("w",), atol=1e-5)

POOL = [  # variant, x shape, attrs
    ("k2s2", (1, 2, 4, 6, 6), {"kernel": (2, 2, 2), "stride": (2, 2, 2)}),
    ("k3_pad1", (2, 2, 5, 6, 5), {"kernel": (3, 3, 3), "pad": (1, 1, 1, 1, 1, 1)}),
    ("asym", (1, 3, 6, 5, 7), {"kernel": (3, 2, 3), "stride": (2, 1, 2),
                               "pad": (1, 0, 1, 0, 1, 1)}),
    ("ceil", (1, 2, 7, 6, 5), {"kernel": (3, 2, 2), "stride": (2, 2, 2), "pad": (1, 1, 0, 1, 1, 0),
                               "ceil_mode": True}),
    ("dilation", (1, 1, 7, 7, 6), {"kernel": (2, 2, 2), "dilation": (2, 1, 2)}),
]
for _name, _xs, _attrs in POOL:
    _x = randn(*_xs)
    case("max_pool3d", _name, {"x": _x}, N("MaxPool", "x", **_window(_attrs, pool=True)),
         attrs=_attrs)
    for _cip in (True, False):
        if not _cip and not any(_attrs.get("pad", ())):
            continue  # without padding count_include_pad changes nothing
        case("avg_pool3d", f"{_name}_{'incl' if _cip else 'excl'}_pad", {"x": _x},
             N("AveragePool", "x", count_include_pad=int(_cip), **_window(_attrs, pool=True)),
             attrs={**_attrs, "count_include_pad": _cip})
