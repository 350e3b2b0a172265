"""The ``nnfs`` command.

Every nnfs error becomes one line on stderr and a non-zero exit status (1 for an nnfs error,
2 for a command line that argparse refuses, 130 for Ctrl-C); ``--debug`` shows tracebacks and
traces the plugin hooks.

Standard output holds the command's results and nothing else, and failing to write them is an
error like any other: a closed standard output is refused before any work, and a write that
fails (a full disk, ``> /dev/full``) is reported once the command has done its work (a model
it trained is saved), as one line and exit status 1. A reader that stops reading (``| head``)
ends the output quietly. With a closed standard error, errors have nowhere to go: the exit
status still says what happened.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import os
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
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --- nnfs backends ------------------------------------------------------------------------------

def _backends_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _backends(args: argparse.Namespace) -> int:
    """The table (or JSON) of backends; exit status 1 when a plugin was refused."""
    infos = nnfs.backends()
    warnings = registry.default().conflicts() + [f"{i.name} ({i.distribution}): {note}"
                                            for i in infos for note in i.notes]
    refused = [i for i in infos if i.refused]
    try:
        default, why = registry.default().default_backend()
    except NnfsError as error:
        default, why = None, str(error)
    if args.json:
        print(json.dumps({
            "backends": [
                {"name": i.name, "distribution": i.distribution, "version": i.version,
                 "available": i.available, "reason": i.reason, "devices": list(i.devices),
                 "dtypes": list(i.dtypes), "description": i.description,
                 "refused": i.refused, "notes": list(i.notes), "priority": i.priority,
                 "default": i.name == default, "options": list(i.options)}
                for i in infos
            ],
            "default": {"name": default, "reason": why},
            "warnings": warnings,
        }, indent=2))
    elif not infos:
        print("No backends are installed. Install one, for example: pip install nnfs-cpu")
    else:
        rows = [(i.name, i.distribution, i.version, "yes" if i.available else "no",
                 "; ".join(i.devices) or "-", ",".join(i.dtypes) or "-", i.reason or "")
                for i in infos]
        print(_table(rows, ("name", "distribution", "version", "available", "devices",
                            "dtypes", "reason")))
        print(f"\ndefault: {default}: {why}" if default else f"\nno default backend: {why}")
        for i in infos:
            if i.options:
                print(f"options of {i.name} (nnfs.backend('{i.name}', key=value) or "
                      f"--backend {i.name}:key=value,...): " + "; ".join(i.options))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if refused:
        names = ", ".join(f"{i.name} ({i.distribution})" for i in refused)
        print(f"nnfs backends: {len(refused)} plugin{'s were' if len(refused) > 1 else ' was'} "
              f"refused: {names}; the reason column says why", file=sys.stderr)
        return 1
    return 0


# --- nnfs demo ----------------------------------------------------------------------------------

def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default=None,
                        help="NAME or NAME:key=value,... (default: NNFS_BACKEND, else the best "
                             "installed backend; nnfs backends lists them)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])


def _demo(args: argparse.Namespace) -> int:
    from .examples import article_example

    factory = nnfs.backend(args.backend, args.dtype)
    result = article_example(factory)
    print(f"backend: {factory.describe()}")
    print(f"untrained output: {result.untrained.ravel().tolist()}")
    for epochs, cost in zip(result.epochs, result.costs, strict=True):
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
    parser.add_argument("--batch-size", type=int, default=None,
                        help="samples per step of the fit preset (default 64)")
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
        parallel = bench.run_parallel(args.preset, world, args.backend, args.dtype, args.epochs,
                                      args.repeats)
        if world.is_root:
            print(bench.as_json(parallel) if args.json else bench.report_parallel(parallel))
        return 0
    result = bench.run(args.preset, args.backend, args.dtype, args.epochs, args.repeats,
                       batch_size=args.batch_size)
    print(bench.as_json(result) if args.json else bench.report(result))
    if result.warning and args.json:
        print(f"nnfs bench: {result.warning}", file=sys.stderr)
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


class _Output(io.TextIOBase):
    """The command's standard output. Writes go to ``stream`` (None when standard output was
    closed); the first that fails is kept and the rest are dropped, so that the command
    finishes its work (saves what it trained) before :func:`main` reports the failure."""

    def __init__(self, stream):
        self.stream = stream
        self.failure: str | None = None
        self.broken_pipe = False

    def _attempt(self, action) -> None:
        if self.failure is not None or self.broken_pipe:
            return
        if self.stream is None:
            self.failure = "it is closed"
            return
        try:
            action()
        except BrokenPipeError:
            self.broken_pipe = True  # the reader stopped reading: not an error of ours
        except (OSError, ValueError) as error:
            code = getattr(error, "errno", None)
            self.failure = (f"[Errno {code}] {os.strerror(code)}" if code
                            else str(error) or type(error).__name__)

    def write(self, text: str) -> int:
        if text:
            self._attempt(lambda: self.stream.write(text))
        return len(text)

    def flush(self) -> None:
        if self.stream is not None:
            self._attempt(self.stream.flush)

    def isatty(self) -> bool:
        return self.stream is not None and self.failure is None and self.stream.isatty()

    def fileno(self) -> int:
        if self.stream is None:
            raise io.UnsupportedOperation("standard output is closed")
        return self.stream.fileno()

    @property  # typeshed has TextIOBase.encoding as a plain attribute; io's own are read-only
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    def writable(self) -> bool:
        return True

    def finish(self) -> str | None:
        """Flush; the failure to report, if any. The real stream is closed after a failure,
        so that Python does not fail to flush it again at exit."""
        self.flush()
        if (self.failure is not None or self.broken_pipe) and self.stream is not None:
            with contextlib.suppress(OSError, ValueError):
                self.stream.close()
        return self.failure


def _open_closed_descriptors() -> set[int]:
    """Put /dev/null on standard descriptors 0, 1 and 2 where they are closed, and return
    those: otherwise the next file nnfs opened (a model it writes) would get the number, and
    anything printed to stdout or stderr would go into it."""
    closed = set()
    for descriptor in (0, 1, 2):
        try:
            os.fstat(descriptor)
        except OSError as error:
            if error.errno != errno.EBADF:
                continue
            closed.add(descriptor)
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != descriptor:
                os.dup2(opened, descriptor)
                os.close(opened)
    return closed


def _writes_to_stdout(args: argparse.Namespace) -> bool:
    """Whether the command's results go to standard output (all but predict --output)."""
    return not (args.command == "predict" and getattr(args, "output", None))


def main(argv: Sequence[str] | None = None) -> int:
    _open_closed_descriptors()
    if sys.stderr is None:  # closed: errors have nowhere to go, the exit status tells
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process
    original = sys.stdout
    output = _Output(original)
    sys.stdout = output
    command = None
    try:
        status, command = _main(argv, output)
    except SystemExit as leaving:  # argparse: --help, --version, refused options
        code = leaving.code
        status = code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.stdout = original  # (closed after a failure: Python does not flush it again)
    failure = output.finish()
    if failure is not None:
        prefix = f"nnfs {command}" if command else "nnfs"
        print(f"{prefix}: error: cannot write to standard output: {failure}", file=sys.stderr)
        status = status or 1
    return status


def _main(argv: Sequence[str] | None, output: _Output) -> tuple[int, str | None]:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the command they were given to, with its --help
        (getattr(args, "parser", None) or parser).error(
            f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return 2, None
    if output.stream is None and _writes_to_stdout(args):
        print(f"nnfs {args.command}: error: standard output is closed, and nnfs {args.command} "
              "writes its results there: redirect it to a file or to /dev/null", file=sys.stderr)
        return 1, args.command
    if args.debug:
        registry.default().enable_tracing()
        return args.run(args), args.command
    try:
        return args.run(args), args.command
    except NnfsError as error:
        print(f"nnfs {args.command}: error: {error}", file=sys.stderr)
        return 1, args.command
    except KeyboardInterrupt as interrupt:
        detail = f": {interrupt}" if str(interrupt) else ""
        print(f"nnfs {args.command}: interrupted{detail}", file=sys.stderr)
        return 130, args.command


if __name__ == "__main__":
    sys.exit(main())
