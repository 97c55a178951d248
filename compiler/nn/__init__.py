"""Layers a deep-learning user recognises at once, with torch.nn's names and conventions."""

from .attention import MultiheadAttention, TransformerEncoderLayer
from .init import manual_seed
from .layers import (
    ELU,
    GELU,
    SELU,
    AdaptiveAvgPool2d,
    AvgPool2d,
    Conv2d,
    Dropout,
    Embedding,
    Flatten,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    Identity,
    LeakyReLU,
    Linear,
    LogSoftmax,
    MaxPool2d,
    Mish,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Softsign,
    Tanh,
    Unflatten,
)
from .loss import CrossEntropyLoss, MSELoss
from .module import Module, ModuleList, Sequential, StateDictError
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .recurrent import GRU, LSTM, RNN

__all__ = [
    "ELU", "GELU", "GRU", "LSTM", "RNN", "SELU", "AdaptiveAvgPool2d", "AvgPool2d",
    "BatchNorm1d", "BatchNorm2d", "Conv2d", "CrossEntropyLoss", "Dropout", "Embedding",
    "Flatten", "Hardsigmoid", "Hardswish", "Hardtanh", "Identity", "LayerNorm", "LeakyReLU",
    "Linear", "LogSoftmax", "MSELoss", "MaxPool2d", "Mish", "Module", "ModuleList",
    "MultiheadAttention", "ReLU", "ReLU6", "Sequential", "SiLU", "Sigmoid", "Softmax",
    "Softplus", "Softsign", "StateDictError", "Tanh", "TransformerEncoderLayer", "Unflatten",
    "manual_seed",
]
