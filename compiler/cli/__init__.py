"""lamina: look at what the compiler does to a model, draw it, time it, and find what broke.

MODEL is an .onnx file, a graph saved with ir.save or `lamina compile` (.npz), or
FILE.py:NAME / module:NAME naming a function that returns (model, *example_inputs).
FILE.py:NAME, module:NAME and --plugin run that Python code, as `python FILE.py` would:
name only code you trust (docs/THREAT_MODEL.md says what each kind of input can do).
"""

from __future__ import annotations

import argparse
import sys

import ir

from .. import __version__
from .build import add_bench, add_compile, add_profile, add_run
from .common import Formatter, import_path, load_model
from .debug import Finding, add_bisect, add_repro_verb
from .quantize import add_quantize
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
  int8 after training         lamina quantize MODEL --calibration data.npz -o q.npz
  the passes and pipelines    lamina passes

try: lamina dump examples/small_cnn.py:build -O 3 --diff
`lamina VERB --help` explains each verb. Progress is shown on a terminal, never when piped.
"""


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (`lamina: error: VERB: ...`, exit status 2)
    instead of the usage text and the error."""

    def error(self, message: str):
        verb = self.prog.removeprefix("lamina").strip()
        self.exit(2, f"lamina: error: {verb + ': ' if verb else ''}{message} "
                     f"(see `{self.prog} --help`)\n")


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="lamina", description=__doc__, epilog=GUIDE, formatter_class=Formatter)
    p.add_argument("--version", action="version", version=f"lamina {__version__}")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE.py|MODULE",
                   help="import this first, e.g. to register extra passes (repeatable); "
                        "runs its code")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.add_argument("--debug", action="store_true",
                   help="on an error, show the Python traceback instead of one line")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for add in (add_dump, add_graph, add_passes, add_compile, add_run, add_bench, add_profile,
                add_bisect, add_repro_verb, add_quantize):
        add(sub)
    return p


def main(argv=None) -> int:
    """Run the command line; returns the exit status (1: an error, or a finding reported;
    2: a usage error, raised as SystemExit by argparse)."""
    args = parser().parse_args(argv)
    try:
        for plugin in args.plugin:
            import_path(plugin, "--plugin")
        args.fn(args)
    except Finding:
        return 1
    except KeyboardInterrupt:
        print("lamina: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `lamina dump ... | head`
        sys.stderr.close()
        return 0
    except Exception as e:  # one line, never a traceback, unless --debug asks for it
        if args.debug:
            raise
        print(f"lamina: error: {describe(e)}", file=sys.stderr)
        return 1
    return 0


def describe(e: Exception) -> str:
    """An error as one line: Lamina's own say what and where; an OSError names its path;
    anything else is a bug in Lamina, said as such."""
    if isinstance(e, ir.LaminaError):
        message = str(e)
    elif isinstance(e, OSError):
        message = f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e)
    elif isinstance(e, MemoryError):
        message = f"out of memory{': ' if str(e) else ''}{e}"
    else:
        message = (f"internal error (a bug in Lamina): {type(e).__name__}: {e}; rerun with "
                   "`lamina --debug ...` for the traceback")
    return " ".join(message.split())
