"""Front ends: the ways a model becomes an `ir.Graph`.

- `tracing`: a `compiler.nn` model run on symbolic tensors (`compiler.trace`);
- `onnx`: an ONNX file imported (`load_onnx`) and a graph exported (`save_onnx`);
- `torch`: a `torch.nn.Module` through torch.export (`from_torch`), and the
  `torch.compile(backend="lamina")` backend.
"""
