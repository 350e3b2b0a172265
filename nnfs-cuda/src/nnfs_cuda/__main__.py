"""``python -m nnfs_cuda``: the GPU owner's command.

Checks what only a GPU can show (see :mod:`nnfs_cuda.verify`): a 4096³ product read back as
soon as it is queued, every operation on an input such a product is still writing, the cuBLAS
handle's stream after a product and after an nrm2, the conformance kit in float32 and float64,
and the article's benchmark — its cost against the CPU backend's, its TFLOP/s against the
card's peak. Prints a short report to paste into an issue. Exits 0 when every check passes, 1
when one fails, 2 when the backend cannot run here (with the reason).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import nnfs

from . import bench, verify
from .backend import SlowFloat64Warning


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nnfs_cuda",
        description="Check the cuda backend on this GPU: ordering of its stream, the cuBLAS "
                    "handle's stream, the conformance kit, and the article's benchmark "
                    "(10000 inputs; 5000 tanh, 1000 sigmoid, 10 sigmoid; 10000 samples; "
                    "10 epochs) against the cpu backend and the card's peak.")
    parser.add_argument("--device", type=int, default=0, help="CUDA device index (default 0)")
    parser.add_argument("--dtype", action="append", choices=["float32", "float64"],
                        help="check only this dtype (repeatable; default: both)")
    parser.add_argument("--side", type=int, default=4096,
                        help="side of the product the ordering checks read back (default 4096)")
    parser.add_argument("--size", choices=["article", "small"], default="article",
                        help="benchmark size: the article's (default) or a small one")
    parser.add_argument("--skip-kit", "--skip-conformance", action="store_true",
                        dest="skip_kit", help="leave out the conformance kit")
    parser.add_argument("--skip-benchmark", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="a line for every kit check")
    parser.add_argument("--report", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.side < 1:
        parser.error(f"--side must be 1 or more, got {args.side}")

    plan = verify.Plan(device=args.device, dtypes=tuple(args.dtype or ("float32", "float64")),
                       side=args.side,
                       size=bench.ARTICLE if args.size == "article" else bench.SMALL,
                       kit=not args.skip_kit, benchmark=not args.skip_benchmark,
                       verbose=args.verbose)
    report = verify.Report(echo=lambda text: print(text, flush=True))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SlowFloat64Warning)
            verify.run(plan, report)
        for warning in caught:
            report.say(f"note: {warning.message}")
    except (nnfs.BackendUnavailable, nnfs.BackendNotFound) as error:
        print(f"python -m nnfs_cuda: {error}", file=sys.stderr)
        return 2
    except nnfs.NnfsError as error:  # out of device memory, a device error: a failure
        report.add("FAIL", "the run stopped", f"{type(error).__name__}: {error}")
    print(report.summary(), flush=True)
    if args.report is not None:
        args.report.write_text(report.text() + "\n", encoding="utf-8")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
