"""Lamina's user-facing driver: layers, tracing, compile(), importers, training and the CLI."""

from backends import artifact as _artifact
from backends.artifact import ArtifactError
from backends.reference import ReferenceModel
from ir.errors import LaminaWarning, MissingDependencyError, OptionError, OptionTypeError

from . import functional, nn
from .compile import TrainingModeWarning, compile, public, to_graph
from .dynamic import Dim, DynamicModel
from .frontends import onnx as _onnx
from .frontends import tracing as _tracing
from .frontends.onnx import OnnxExportError, OnnxImportError, OnnxImportWarning
from .frontends.torch import TorchImportError, TorchImportWarning
from .frontends.torch import from_torch as _from_torch
from .frontends.tracing import Tensor, TraceError
from .quantize import QuantizationReport
from .quantize import quantize as _quantize
from .tools import bisection as _bisection
from .tools import profiler as _profiler
from .tools.bisection import BisectReport
from .training import TrainingError, TrainStep, optim
from .training import compile_training as _compile_training


def _version() -> str:
    """The installed distribution's version; in a checkout never installed, pyproject's."""
    import importlib.metadata

    try:
        return importlib.metadata.version("lamina")
    except importlib.metadata.PackageNotFoundError:
        import tomllib
        from pathlib import Path

        try:
            text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
            return tomllib.loads(text)["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "0+unknown"


__version__ = _version()

# The public functions, behind the argument checks of the API boundary (compile.public):
# a bad argument is an OptionError naming the function and the argument.
trace = public(_tracing.trace, model="traced")
compile_training = public(_compile_training, model="traced")
load_onnx = public(_onnx.load_onnx)
from_torch = public(_from_torch)  # torch itself is imported only when this is called
save_onnx = public(_onnx.save_onnx)
bisect = public(_bisection.bisect, model="any")
profile = public(_profiler.profile, model="any")
format_profile = public(_profiler.format_profile)
load = public(_artifact.load)  # a saved compiled model (fn.save); never imports LLVM
quantize = public(_quantize, model="any")  # post-training int8 (compiler/quantize.py)

__all__ = ["BisectReport", "LaminaWarning", "MissingDependencyError", "OnnxExportError",
           "OnnxImportError", "OnnxImportWarning", "OptionError", "OptionTypeError",
           "QuantizationReport",
           "ReferenceModel", "Tensor", "TraceError", "TrainStep", "TrainingError",
           "TrainingModeWarning", "__version__", "bisect", "compile", "compile_training",
           "format_profile", "functional", "load_onnx", "nn", "optim", "profile", "quantize",
           "save_onnx",
           "to_graph", "trace"]
__all__ += ["TorchImportError", "TorchImportWarning", "from_torch"]
__all__ += ["ArtifactError", "load"]
__all__ += ["Dim", "DynamicModel"]
