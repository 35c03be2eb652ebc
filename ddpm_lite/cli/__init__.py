"""Command line: python -m ddpm_lite {sample, train, export, distill, evaluate, train-classifier, benchmark} --help.

One module per command, each with add_arguments(sub) and run(args); COMMANDS below is the whole table. Arguments
are checked before any work starts; bad input, and a world that does not cooperate (a file that cannot be read or
written, memory that runs out), gets one line on stderr and exit status 2.
"""
from __future__ import annotations

import sys

from ..errors import DdpmLiteError
from ..parallel.distributed import is_main_process
from . import (benchmark_command, classifier_command, distill_command, evaluate_command, sample_command,
               train_command)
from .args import Parser

OUT_OF_MEMORY = ("can't allocate memory", "out of memory", "not enough memory")
# name: (add the sub-command's arguments, run it)
COMMANDS = {
    "sample": (sample_command.add_arguments, sample_command.run),
    "train": (train_command.add_arguments, train_command.run),
    "export": (train_command.add_export, train_command.run_export),
    "distill": (distill_command.add_arguments, distill_command.run),
    "evaluate": (evaluate_command.add_arguments, evaluate_command.run),
    "train-classifier": (classifier_command.add_arguments, classifier_command.run),
    "benchmark": (benchmark_command.add_arguments, benchmark_command.run),
}


def build_parser() -> Parser:
    parser = Parser(prog="python -m ddpm_lite", description="Small, correct DDPM on MNIST.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add_arguments, _ in COMMANDS.values():
        add_arguments(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][1](args) or 0
    except (DdpmLiteError, ValueError) as e:
        return fail(str(e))
    except OSError as e:  # a path that cannot be read or written, a full disk
        return fail(f"{e.strerror or e}: {e.filename}" if e.filename else str(e))
    except (MemoryError, RuntimeError) as e:  # torch's allocators raise RuntimeError (OutOfMemoryError on GPUs)
        if not isinstance(e, MemoryError) and not any(s in str(e) for s in OUT_OF_MEMORY):
            raise
        first = (str(e).splitlines() or ["MemoryError"])[0]
        return fail(f"out of memory ({first}); ask for less at once: a smaller --n or --batch-size")
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint written is intact", file=sys.stderr)
        return 130


def fail(message: str) -> int:
    if is_main_process():  # under torchrun every rank meets the same error: one line, not one per rank
        print(f"error: {message}", file=sys.stderr)
    return 2
