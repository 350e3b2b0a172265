"""``python -m nnfs.testing NAME``: run the conformance kit against an installed backend."""

from __future__ import annotations

import argparse
import sys

import nnfs

from . import CHECKS, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nnfs.testing",
        description="Check that an installed nnfs backend conforms to the factory contract.")
    parser.add_argument("name", nargs="?",
                        help="the backend, as given to nnfs.backend(): NAME or "
                             "NAME:key=value,... (for example opencl:gemm=clblast)")
    parser.add_argument("--dtype", action="append", choices=["float32", "float64"],
                        help="check only this dtype (repeatable; default: every declared dtype)")
    parser.add_argument("-k", dest="select", default=None,
                        help="run only the checks whose name contains this text")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for check in CHECKS:
            print(f"{check.name:32} {check.description}")
        return 0
    if args.name is None:
        parser.error("give the name of the backend to check, for example: "
                     "python -m nnfs.testing cpu")

    def report(result) -> None:
        label = {"pass": "ok", "fail": "FAIL", "error": "ERROR", "skip": "skip"}[result.outcome]
        line = f"{label:5} {result.dtype:8} {result.check:32} {result.seconds:7.2f}s"
        if result.message:
            line += f"  {result.message.splitlines()[0]}"
        print(line, flush=True)

    try:
        results = run(args.name, tuple(args.dtype) if args.dtype else None, args.select, report)
    except nnfs.NnfsError as error:
        print(f"python -m nnfs.testing: error: {error}", file=sys.stderr)
        return 2
    bad = [r for r in results if r.outcome in ("fail", "error")]
    skipped = [r for r in results if r.outcome == "skip"]
    declared = sum(r.declared_unsupported for r in skipped)
    detail = f" ({declared} declared unsupported)" if declared else ""
    print(f"\n{args.name}: {len(results) - len(bad) - len(skipped)} passed, {len(bad)} failed, "
          f"{len(skipped)} skipped{detail}")
    if bad:
        print(f"{args.name} does not conform:", file=sys.stderr)
        for result in bad:
            print(f"  {result.dtype} {result.check}: {result.message}", file=sys.stderr)
        return 1
    if not results:
        print("no check matched", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
