"""Robustness (issue 9): bad models and bad calls get the project's errors, generated code
never crashes the process or touches memory it was not given, and fuzzing keeps it so.

test_bad_models    bad models through every front door: text, Graph API, ONNX, layers, tracing
test_fuzz_text     hypothesis: corrupted IR text parses to a verifiable graph or LaminaError
test_fuzz_onnx     hypothesis: corrupted ONNX files load or raise OnnxImportError
test_differential  hypothesis: reference, O3 and LLVM agree on random valid graphs
test_numerics      NaN/Inf through every kernel, huge softmax inputs, determinism
test_calls         bad and odd arguments, threads, memory growth, the call lock's cost
test_memory_safety kernels on buffers fenced by PROT_NONE pages and canaries (guarded.py)
test_loading       no unpickling, corrupt files, no disk cache written
Checks that could crash run in child processes (isolate.py, children.py, guarded.py).
"""
