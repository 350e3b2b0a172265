"""The ``nnfs`` command.

Every nnfs error becomes one line on stderr and a non-zero exit status (1 for an nnfs error,
2 for a command line that argparse refuses, 130 for Ctrl-C); ``--debug`` shows tracebacks and
traces the plugin hooks.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

import nnfs

from . import registry
from .errors import NnfsError, NnfsValueError


class _Parser(argparse.ArgumentParser):
    """argparse, with its refusals on one line like every other error of the command (argparse
    prints the whole usage first), pointing to --help."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --- nnfs backends ------------------------------------------------------------------------------

def _backends_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _backends(args: argparse.Namespace) -> int:
    infos = nnfs.backends()
    warnings = registry.default().conflicts()
    if args.json:
        print(json.dumps({
            "backends": [
                {"name": i.name, "distribution": i.distribution, "version": i.version,
                 "available": i.available, "reason": i.reason, "devices": list(i.devices),
                 "dtypes": list(i.dtypes), "description": i.description}
                for i in infos
            ],
            "warnings": warnings,
        }, indent=2))
        return 0
    if not infos:
        print("No backends are installed. Install one, for example: pip install nnfs-cpu")
    else:
        rows = [(i.name, i.distribution, i.version, "yes" if i.available else "no",
                 "; ".join(i.devices) or "-", ",".join(i.dtypes) or "-", i.reason or "")
                for i in infos]
        print(_table(rows, ("name", "distribution", "version", "available", "devices",
                            "dtypes", "reason")))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


# --- nnfs demo ----------------------------------------------------------------------------------

def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default=None, help="backend name (default: NNFS_BACKEND, else cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])


def _demo(args: argparse.Namespace) -> int:
    from .examples import article_example

    factory = nnfs.backend(args.backend, args.dtype)
    result = article_example(factory)
    print(f"backend: {factory.describe()}")
    print(f"untrained output: {result.untrained.ravel().tolist()}")
    for epochs, cost in zip(result.epochs, result.costs):
        print(f"cost after sgd of {epochs:>4} epochs at eta 0.05: {cost:.6g}")
    print(f"trained output:   {result.trained.ravel().tolist()}")
    print(f"input unchanged:  {result.input_unchanged}")
    return 0


# --- entry point --------------------------------------------------------------------------------

def _train_arguments(parser: argparse.ArgumentParser) -> None:
    from .commands import add_train_arguments

    add_train_arguments(parser)


def _train(args: argparse.Namespace) -> int:
    from .commands import run_train

    return run_train(args)


def _predict_arguments(parser: argparse.ArgumentParser) -> None:
    from .commands import add_predict_arguments

    add_predict_arguments(parser)


def _predict(args: argparse.Namespace) -> int:
    from .commands import run_predict

    return run_predict(args)


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    from .export import add_export_arguments

    add_export_arguments(parser)


def _export(args: argparse.Namespace) -> int:
    from .export import run_export

    return run_export(args)


def _bench_arguments(parser: argparse.ArgumentParser) -> None:
    from .bench import PRESETS

    parser.add_argument("preset", nargs="?", default="scaled", choices=list(PRESETS),
                        help="workload (default: scaled)")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--epochs", type=int, default=None, help="epochs per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (the median is shown)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--mpi", action="store_true",
                        help="time a data-parallel fit of the workload, its batch split across "
                             "the ranks of an MPI job (on by itself under mpiexec with more "
                             "than one process)")


def _bench(args: argparse.Namespace) -> int:
    from . import bench

    if args.repeats < 1:
        raise NnfsValueError(f"--repeats must be positive, got {args.repeats}")
    if args.epochs is not None and args.epochs < 1:
        raise NnfsValueError(f"--epochs must be positive, got {args.epochs}")
    if args.mpi or nnfs.mpi.launched_size() > 1:
        world = nnfs.mpi.world()
        result = bench.run_parallel(args.preset, world, args.backend, args.dtype, args.epochs,
                                    args.repeats)
        if world.is_root:
            print(bench.as_json(result) if args.json else bench.report_parallel(result))
        return 0
    result = bench.run(args.preset, args.backend, args.dtype, args.epochs, args.repeats)
    print(bench.as_json(result) if args.json else bench.report(result))
    return 0


#: name: (help, add the arguments, run)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int]]] = {
    "backends": ("list the installed backends, their devices and dtypes, and why any cannot "
                 "be used", _backends_arguments, _backends),
    "train": ("train a classifier (default: scikit-learn's digits) and print its test accuracy",
              _train_arguments, _train),
    "predict": ("predict with a model saved by 'nnfs train --save'", _predict_arguments, _predict),
    "export": ("write a model saved by 'nnfs train --save' as an ONNX file",
               _export_arguments, _export),
    "bench": ("time the article's micro benchmark against its GEMM floor",
              _bench_arguments, _bench),
    "demo": ("run the article's example: a 2-4-1 network trained towards 0.5",
             _demo_arguments, _demo),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nnfs", description="nnfs: neural networks from scratch, on any backend")
    parser.add_argument("--version", action="version", version=f"nnfs-core {nnfs.__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and trace the plugin hook calls")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(run=run, parser=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the command they were given to, with its --help
        (getattr(args, "parser", None) or parser).error(
            f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return 2
    if args.debug:
        registry.default().enable_tracing()
        return args.run(args)
    try:
        return args.run(args)
    except NnfsError as error:
        print(f"nnfs {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        detail = f": {interrupt}" if str(interrupt) else ""
        print(f"nnfs {args.command}: interrupted{detail}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
