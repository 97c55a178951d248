"""A MODEL spec for the command-line tests that also registers deliberately wrong passes
when it is imported (only ever in a `lamina` subprocess, or through `--plugin`):

    corrupt_conv_weights  claims to be exact but scales the first conv2d's weight by 1.01
    crash_pass            raises, as a pass with a bug would
"""

import numpy as np
from cli_models import build  # noqa: F401  (this folder is on sys.path when lamina loads it)

import passes


def _corrupt(graph):
    """Scale the first conv2d's weight a little: wrong, yet plausible-looking numbers."""
    for node in graph.nodes:
        if node.op == "conv2d":
            name = node.inputs[1].name
            graph.weights[name] = (graph.weights[name] * np.float32(1.01)).astype(np.float32)
            return {"weights": 1}
    return {}


def _crash(graph):
    raise RuntimeError("crash_pass always fails")


if "corrupt_conv_weights" not in passes.names():
    passes.graph_pass("corrupt_conv_weights")(_corrupt)
    passes.graph_pass("crash_pass")(_crash)
