"""Layers a deep-learning user recognises at once, with torch.nn's names and conventions."""

from .attention import MultiheadAttention, TransformerEncoderLayer
from .init import manual_seed
from .layers import (
    GELU,
    AdaptiveAvgPool2d,
    AvgPool2d,
    Conv2d,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    LogSoftmax,
    MaxPool2d,
    ReLU,
    ReLU6,
    Sigmoid,
    Softmax,
    Tanh,
)
from .loss import CrossEntropyLoss, MSELoss
from .module import Module, ModuleList, Sequential, StateDictError
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .recurrent import GRU, LSTM, RNN

__all__ = [
    "GELU", "GRU", "LSTM", "RNN", "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d",
    "Conv2d", "CrossEntropyLoss", "Dropout", "Embedding", "Flatten", "Identity", "LayerNorm",
    "LeakyReLU", "Linear", "LogSoftmax", "MSELoss", "MaxPool2d", "Module", "ModuleList",
    "MultiheadAttention", "ReLU", "ReLU6", "Sequential", "Sigmoid", "Softmax", "StateDictError",
    "Tanh", "TransformerEncoderLayer", "manual_seed",
]
