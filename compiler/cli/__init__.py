"""lamina: look at what the compiler does to a model, draw it, time it, and find what broke.

MODEL is an .onnx file, a graph saved with ir.save or `lamina compile` (.npz), or
FILE.py:NAME / module:NAME naming a function that returns (model, *example_inputs).
"""

from __future__ import annotations

import argparse
import sys

import ir

from .build import add_bench, add_compile, add_profile, add_run
from .common import Formatter, import_path, load_model
from .debug import Finding, add_bisect, add_repro_verb
from .view import add_dump, add_graph, add_passes

__all__ = ["load_model", "main", "parser"]

GUIDE = """\
where to start:
  the IR after each pass      lamina dump MODEL -O 3 --print-after-changed
  only what each pass changed lamina dump MODEL -O 3 --diff
  one file per pass + timings lamina dump MODEL -O 3 --dump-dir DIR
  a picture, fused regions    lamina graph MODEL -O 3 -o graph.svg
  where the time goes         lamina profile MODEL -O 3
  latency against reference   lamina bench MODEL -O 3
  which pass broke numbers    lamina bisect MODEL -O 3
  replay a bug report         lamina repro lamina-repro.npz
  the passes and pipelines    lamina passes

try: lamina dump examples/small_cnn.py:build -O 3 --diff
`lamina VERB --help` explains each verb. Progress is shown on a terminal, never when piped.
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lamina", description=__doc__, epilog=GUIDE,
                                formatter_class=Formatter)
    p.add_argument("--plugin", action="append", default=[], metavar="FILE.py|MODULE",
                   help="import this first, e.g. to register extra passes (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for add in (add_dump, add_graph, add_passes, add_compile, add_run, add_bench, add_profile,
                add_bisect, add_repro_verb):
        add(sub)
    return p


def main(argv=None) -> int:
    """Run the command line; returns the exit status (1: an error, or a finding reported)."""
    args = parser().parse_args(argv)
    try:
        for plugin in args.plugin:
            import_path(plugin)
        args.fn(args)
    except Finding:
        return 1
    except ir.LaminaError as e:
        message = " ".join(str(e).split("\n"))
        print(f"lamina: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lamina: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `lamina dump ... | head`
        sys.stderr.close()
        return 0
    return 0
