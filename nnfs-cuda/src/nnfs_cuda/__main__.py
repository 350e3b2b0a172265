"""``python -m nnfs_cuda``: the GPU owner's command.

Runs nnfs's conformance checks on the cuda backend (float32 and float64), then the article's
benchmark at its full size, and prints the TFLOP/s achieved. Exits 0 when every check passes,
1 when one fails, 2 when the backend cannot run here (with the reason).
"""

from __future__ import annotations

import argparse
import sys
import warnings

import nnfs
from nnfs.testing import CHECKS, run_check

from . import benchmark
from .backend import SlowFloat64Warning


def _conformance(device: int, dtypes: list[str]) -> int:
    """Run every check for each dtype; the number that failed."""
    failed = 0
    for dtype in dtypes:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SlowFloat64Warning)
            factory = nnfs.backend("cuda", dtype, device=device)
        for warning in caught:
            print(f"note: {warning.message}")
        print(f"conformance: {factory!r}")
        for check in CHECKS:
            result = run_check(check, factory)
            label = {"pass": "ok", "fail": "FAIL", "error": "ERROR", "skip": "skip"}[result.outcome]
            line = f"  {label:5} {dtype:8} {result.check:32} {result.seconds:7.2f}s"
            if result.message:
                line += f"  {result.message.splitlines()[0]}"
            print(line, flush=True)
            failed += result.outcome in ("fail", "error")
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nnfs_cuda",
        description="Check the cuda backend against nnfs's contract on this GPU, then run the "
                    "article's benchmark (10000 inputs; 5000 tanh, 1000 sigmoid, 10 sigmoid; "
                    "10000 samples; 10 epochs) and print the TFLOP/s achieved.")
    parser.add_argument("--device", type=int, default=0, help="CUDA device index (default 0)")
    parser.add_argument("--dtype", action="append", choices=["float32", "float64"],
                        help="check only this dtype (repeatable; default: both)")
    parser.add_argument("--size", choices=["article", "small"], default="article",
                        help="benchmark size: the article's (default) or a small one")
    parser.add_argument("--skip-conformance", action="store_true")
    parser.add_argument("--skip-benchmark", action="store_true")
    args = parser.parse_args(argv)

    try:
        failed = 0
        if not args.skip_conformance:
            failed = _conformance(args.device, args.dtype or ["float32", "float64"])
            print(f"conformance: {'all checks passed' if not failed else f'{failed} FAILED'}")
        if not args.skip_benchmark:
            factory = nnfs.backend("cuda", "float32", device=args.device)
            size = benchmark.ARTICLE if args.size == "article" else benchmark.SMALL
            print(f"benchmark on {factory.describe()} ...", flush=True)
            print(benchmark.run(factory, size).report())
    except (nnfs.BackendUnavailable, nnfs.BackendNotFound) as error:
        print(f"python -m nnfs_cuda: {error}", file=sys.stderr)
        return 2
    except nnfs.OutOfDeviceMemory as error:
        print(f"python -m nnfs_cuda: the benchmark does not fit on this GPU: {error}",
              file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
