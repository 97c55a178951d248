"""PyTorch in: `from_torch` (importer.py, with one function per Core ATen operator in ops/)
and the `torch.compile` backend (dynamo.py, registered as "lamina" through the
`torch_dynamo_backends` entry point). torch is imported only when a module is imported or
compiled: `import compiler` never imports it."""

from .builder import TorchImportError, TorchImportWarning
from .importer import from_torch

__all__ = ["TorchImportError", "TorchImportWarning", "from_torch"]
