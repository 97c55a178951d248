"""Training compiled like inference: autodiff on the IR (`passes.autodiff`), optimizers written
as IR (`optim`), and forward, backward and update as one compiled step (`step`)."""

from . import optim
from .step import TrainingError, TrainStep, compile_training

__all__ = ["TrainStep", "TrainingError", "compile_training", "optim"]
