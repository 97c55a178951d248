"""The benchmark models, defined with compiler.nn: ResNet-18, a MobileNetV2-style network,
a transformer encoder, an LSTM text classifier, an MLP and LeNet.

`build(name, batch)` returns `(model, example_input)`, with non-trivial batch-norm
statistics so that folding is exercised as in a trained model. The architectures are written
once against the torch.nn API, which compiler.nn mirrors: `zoo(torch.nn, torch.as_tensor)`
gives the same models in PyTorch, whose state dicts load ours directly (torch eager is one of
the benchmark's comparisons).
"""

from __future__ import annotations

import numpy as np

from compiler import nn


def zoo(nn, as_array=np.asarray) -> dict:
    """The model classes and builders, written against a torch.nn-like module `nn`."""

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int = 1):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                nn.BatchNorm2d(cout))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            y = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(y)) + identity)


    class ResNet18(nn.Module):
        def __init__(self, classes: int = 1000):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            widths = [64, 128, 256, 512]
            cin = 64
            for i, w in enumerate(widths):
                stride = 1 if i == 0 else 2
                setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, w, stride),
                                                             BasicBlock(w, w)))
                cin = w
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))


    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int):
            super().__init__()
            hidden = cin * expand
            layers = []
            if expand != 1:
                layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                           nn.ReLU6()]
            layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
                       nn.BatchNorm2d(hidden), nn.ReLU6(),
                       nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
            self.conv = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.conv(x) if self.residual else self.conv(x)


    class MobileNetV2(nn.Module):
        """MobileNetV2's layout (width 1.0), sized for 96x96 inputs."""

        SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                    (6, 160, 3, 2), (6, 320, 1, 1)]

        def __init__(self, classes: int = 1000):
            super().__init__()
            layers = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6()]
            cin = 32
            for t, c, n, s in self.SETTINGS:
                for i in range(n):
                    layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                    cin = c
            layers += [nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6(),
                       nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

        def forward(self, x):
            return self.classifier(self.features(x))


    class TransformerEncoder(nn.Module):
        def __init__(self, vocab: int = 1000, d_model: int = 128, nhead: int = 4, layers: int = 2,
                     seq: int = 64, classes: int = 10):
            super().__init__()
            self.embed = nn.Embedding(vocab, d_model)
            self.pos = nn.Embedding(seq, d_model)
            self.layers = nn.ModuleList(
                nn.TransformerEncoderLayer(d_model, nhead, 4 * d_model, 0.1, batch_first=True)
                for _ in range(layers))
            self.norm = nn.LayerNorm(d_model)
            self.head = nn.Linear(d_model, classes)
            self.register_buffer("positions", as_array(np.arange(seq, dtype=np.int64)))

        def forward(self, tokens):
            x = self.embed(tokens) + self.pos(self.positions)
            for layer in self.layers:
                x = layer(x)
            return self.head(self.norm(x).mean(1))


    class LSTMClassifier(nn.Module):
        def __init__(self, vocab: int = 1000, embed: int = 64, hidden: int = 128, classes: int = 4):
            super().__init__()
            self.embed = nn.Embedding(vocab, embed)
            self.lstm = nn.LSTM(embed, hidden, batch_first=True)
            self.fc = nn.Linear(hidden, classes)

        def forward(self, tokens):
            _, (h, _) = self.lstm(self.embed(tokens))
            return self.fc(h[-1])


    def mlp() -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.1),
                             nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))


    def lenet() -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                             nn.Linear(84, 10))

    return {"ResNet18": ResNet18, "MobileNetV2": MobileNetV2,
            "TransformerEncoder": TransformerEncoder, "LSTMClassifier": LSTMClassifier,
            "mlp": mlp, "lenet": lenet}


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give batch norms the non-trivial statistics a trained model has."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.running_mean = rng.normal(0, 0.1, c).astype(np.float32)
            m.running_var = rng.uniform(0.5, 1.5, c).astype(np.float32)
            m.weight = rng.uniform(0.5, 1.5, c).astype(np.float32)
            m.bias = rng.normal(0, 0.1, c).astype(np.float32)
    return model


def _images(batch, c, h, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, c, h, h)).astype(np.float32)


def _tokens(batch, seq, vocab, seed=0):
    return np.random.default_rng(seed).integers(0, vocab, (batch, seq)).astype(np.int64)


MODELS = {  # name -> (zoo entry, input maker, batch norm statistics to randomise)
    "resnet18": ("ResNet18", lambda b: _images(b, 3, 224), True),
    "mobilenetv2": ("MobileNetV2", lambda b: _images(b, 3, 96), True),
    "transformer": ("TransformerEncoder", lambda b: _tokens(b, 64, 1000), False),
    "lstm": ("LSTMClassifier", lambda b: _tokens(b, 32, 1000), False),
    "mlp": ("mlp", lambda b: _images(b, 1, 28), False),
    "lenet": ("lenet", lambda b: _images(b, 1, 28), False),
}


def build(name: str, batch: int = 1):
    """(compiler.nn model in eval mode, example input) for a benchmark model."""
    nn.manual_seed(0)
    entry, inputs, bn = MODELS[name]
    model = zoo(nn)[entry]()
    return (randomize_bn(model) if bn else model).eval(), inputs(batch)


def torch_twin(name: str, model: nn.Module):
    """The same architecture in PyTorch with `model`'s weights (for the torch eager column)."""
    import torch

    twin = zoo(torch.nn, torch.as_tensor)[MODELS[name][0]]()
    twin.load_state_dict({k: torch.as_tensor(v) for k, v in model.state_dict().items()})
    return twin.eval()
