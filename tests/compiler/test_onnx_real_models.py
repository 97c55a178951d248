"""Real architectures exported by `torch.onnx.export` (opset 17, eval mode, random weights),
imported by Lamina and compared with onnxruntime running the same file: classification CNNs,
Swin and ViT, a BERT-style encoder, a GPT-2-style decoder, a U-Net, a YOLO-style detector
head, a Whisper-style Conv1d + attention encoder, LSTM and GRU models.

The files are generated here, at small sizes (architectures, not their full widths, where
torchvision's constructors allow), into a temporary folder. The torchvision models need
torchvision (`pip install --no-deps torchvision pillow`); the rest need torch only. All of
them: `LAMINA_ALL_REAL_MODELS=1 python -m pytest tests/compiler/test_onnx_real_models.py`.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import pytest

import compiler

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from . import torch_models as tm  # noqa: E402


class YoloHead(nn.Module):
    """A YOLO-style neck and head: two scales, nearest upsampling, concatenation, per-anchor
    split into box / objectness / classes, sigmoid and grid decoding."""

    def __init__(self, c: int = 16, anchors: int = 3, classes: int = 4):
        super().__init__()
        self.na, self.no = anchors, 5 + classes
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1), nn.BatchNorm2d(c), nn.SiLU())
        self.down = nn.Sequential(nn.Conv2d(c, 2 * c, 3, 2, 1), nn.BatchNorm2d(2 * c), nn.SiLU())
        self.lateral = nn.Conv2d(2 * c, c, 1)
        self.fuse = nn.Sequential(nn.Conv2d(2 * c, c, 3, 1, 1), nn.SiLU())
        self.detect = nn.ModuleList(nn.Conv2d(ch, anchors * self.no, 1) for ch in (c, 2 * c))

    def forward(self, x):
        small = self.stem(x)
        big = self.down(small)
        up = F.interpolate(self.lateral(big), scale_factor=2, mode="nearest")
        fused = self.fuse(torch.cat([up, small], 1))
        outs = []
        for conv, feat, stride in ((self.detect[0], fused, 2), (self.detect[1], big, 4)):
            b, _, h, w = feat.shape
            p = conv(feat).view(b, self.na, self.no, h, w).permute(0, 1, 3, 4, 2)
            xy, wh, rest = p.split((2, 2, self.no - 4), dim=-1)
            gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            grid = torch.stack((gx, gy), -1).float()
            xy = (xy.sigmoid() * 2 - 0.5 + grid) * stride
            wh = (wh.sigmoid() * 2) ** 2 * stride
            outs.append(torch.cat((xy, wh, rest.sigmoid()), -1).reshape(b, -1, self.no))
        return torch.cat(outs, 1)


class WhisperEncoder(nn.Module):
    """Whisper-style audio encoder: two Conv1d + GELU over log-mel frames (the second with
    stride 2), sinusoidal positions, pre-norm attention blocks, a final LayerNorm."""

    def __init__(self, mels: int = 16, d: int = 32, heads: int = 4, layers: int = 2,
                 frames: int = 24):
        super().__init__()
        self.conv1 = nn.Conv1d(mels, d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        t = torch.arange(frames // 2)[:, None] / 10000 ** (torch.arange(0, d, 2) / d)
        self.register_buffer("positions", torch.cat([t.sin(), t.cos()], 1))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(layers))
        self.ln_post = nn.LayerNorm(d)

    def forward(self, mel):
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).permute(0, 2, 1)
        x = x + self.positions
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x)


def _images(n=1, size=32):
    return (torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0)),)


def _torch_defined():
    """name -> (module factory, inputs factory), for the architectures written here."""
    return {
        "bert_encoder": (lambda: tm.Bert(), lambda: tm.token_inputs()),
        "gpt2_decoder": (lambda: tm.GPT(), lambda: (tm.token_inputs()[0],)),
        "unet": (lambda: tm.UNet(), lambda: (torch.randn(1, 3, 24, 40),)),
        "yolo_head": (lambda: YoloHead(), lambda: _images(1, 32)),
        "whisper_encoder": (lambda: WhisperEncoder(), lambda: (torch.randn(2, 16, 24),)),
        "lstm": (lambda: tm.RNNClassifier("lstm"), lambda: (torch.randn(2, 7, 8),)),
        "gru": (lambda: tm.RNNClassifier("gru"), lambda: (torch.randn(2, 7, 8),)),
    }


def _torchvision_defined(tv):
    """torchvision definitions at small sizes (their constructors' own arguments)."""
    from torchvision.models.swin_transformer import SwinTransformer
    from torchvision.models.vision_transformer import VisionTransformer

    return {
        "resnet18": (lambda: tv.resnet18(num_classes=10), lambda: _images(1, 32)),
        "mobilenet_v3_small": (lambda: tv.mobilenet_v3_small(num_classes=10),
                               lambda: _images(1, 32)),
        "efficientnet_b0": (lambda: tv.efficientnet_b0(num_classes=10), lambda: _images(1, 32)),
        "regnet_y_400mf": (lambda: tv.regnet_y_400mf(num_classes=10), lambda: _images(1, 32)),
        "shufflenet_v2": (lambda: tv.shufflenet_v2_x0_5(num_classes=10), lambda: _images(1, 32)),
        "mnasnet": (lambda: tv.mnasnet0_5(num_classes=10), lambda: _images(1, 32)),
        "squeezenet": (lambda: tv.squeezenet1_1(num_classes=10), lambda: _images(1, 48)),
        "googlenet": (lambda: tv.googlenet(num_classes=10, aux_logits=False, init_weights=False),
                      lambda: _images(1, 32)),
        "densenet": (lambda: tv.densenet121(num_classes=10), lambda: _images(1, 32)),
        "vit": (lambda: VisionTransformer(image_size=32, patch_size=8, num_layers=2,
                                          num_heads=4, hidden_dim=64, mlp_dim=128,
                                          num_classes=10), lambda: _images(1, 32)),
        "swin": (lambda: SwinTransformer(patch_size=[4, 4], embed_dim=32, depths=[2, 2],
                                         num_heads=[2, 4], window_size=[4, 4], num_classes=10),
                 lambda: _images(1, 32)),
    }


TORCH_DEFINED = list(_torch_defined())
# run in CI: 8 of them (with the 7 above, 15 architectures); the three slowest to compile
# run with LAMINA_ALL_REAL_MODELS=1 (the torch front end's tests import them in CI)
TORCHVISION = ["resnet18", "mobilenet_v3_small", "shufflenet_v2", "mnasnet", "squeezenet",
               "googlenet", "vit", "swin"]
if os.environ.get("LAMINA_ALL_REAL_MODELS"):
    TORCHVISION += ["efficientnet_b0", "regnet_y_400mf", "densenet"]


def export(model, inputs) -> bytes:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, inputs, f, dynamo=False, opset_version=17)
    return f.getvalue()


def check(name, make_model, make_inputs, tmp_path):
    torch.manual_seed(0)
    model = tm.randomize(make_model())
    inputs = make_inputs()
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(export(model, inputs))
    arrays = [t.numpy() for t in inputs]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: a for i, a in zip(session.get_inputs(), arrays)}
    want = session.run(None, feeds)
    got = compiler.compile(str(path), *arrays)(*arrays)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        scale = float(np.abs(w).max()) or 1.0
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * max(1.0, scale),
                                   err_msg=f"{name}: Lamina against onnxruntime")


@pytest.mark.parametrize("name", TORCH_DEFINED)
def test_torch_defined_architectures_match_onnxruntime(name, tmp_path):
    make_model, make_inputs = _torch_defined()[name]
    check(name, make_model, make_inputs, tmp_path)


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_architectures_match_onnxruntime(name, tmp_path):
    tv = tm.torchvision_models()
    if tv is None:
        pytest.skip("torchvision is not installed: pip install --no-deps torchvision")
    make_model, make_inputs = _torchvision_defined(tv)[name]
    check(name, make_model, make_inputs, tmp_path)
