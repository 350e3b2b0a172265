"""``python -m nnfs_opencl.bench``: how fast the OpenCL backend is, next to numpy on this machine.

It prints

1. gemm in GFLOP/s (2·m·n·k per second) of the OpenCL backend, of numpy (its BLAS on the
   host) and of CLBlast where pyclblast is installed, for square float32 matrices, with the
   three transposes training uses (nn: forward, nt: weight gradients, tn: back-propagation);
2. the seconds per epoch of the article's benchmark network scaled down (by default 0.4:
   input 4000×4000, layers 2000 tanh, 400 sigmoid, 10 sigmoid) on the cpu and opencl backends,
   each against its own GEMM floor, timed by ``nnfs bench``'s own code (``nnfs.bench.run``).

Each figure is the median of several runs; machines are noisy, so compare figures of one run.
This is a benchmark, not a test: it checks nothing and never fails on a slow machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

import nnfs
from nnfs import backend_api as api


def _median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm up: kernels compile on first use
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _opencl_gemm(factory: nnfs.Factory, size: int, trans: str, repeats: int) -> float:
    """Seconds of one size × size gemm on the device, queue drained."""
    rng = np.random.default_rng(0)
    with factory.matrix(size, size, rng.uniform(-1, 1, (size, size))) as a, \
            factory.matrix(size, size, rng.uniform(-1, 1, (size, size))) as b, \
            factory.matrix(size, size) as c:
        plan = api.steps(factory.backend.gemm(1.0, a, b, 0.0, c, trans[0] == "t",
                                              trans[1] == "t"))

        def run() -> None:
            api.run(plan)
            factory.synchronize()

        return _median_seconds(run, repeats)


def _numpy_gemm(size: int, trans: str, repeats: int) -> float:
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (size, size)).astype(np.float32)
    b = rng.uniform(-1, 1, (size, size)).astype(np.float32)
    c = np.empty((size, size), dtype=np.float32)
    left = a.T if trans[0] == "t" else a
    right = b.T if trans[1] == "t" else b
    return _median_seconds(lambda: np.matmul(left, right, out=c), repeats)


def gemm_table(sizes: list[int], repeats: int, device: object) -> None:
    from .gemm import clblast_available

    factory = nnfs.backend("opencl", device=device)
    clblast = nnfs.backend("opencl", device=device, gemm="clblast") if clblast_available() \
        else None
    print(f"gemm, float32, GFLOP/s (median of {repeats} runs)")
    from .backend import OpenclBackend

    backend = factory.backend
    assert isinstance(backend, OpenclBackend)
    print(f"  opencl:  {factory.describe()}: {backend.gemm_strategy.describe()}")
    print(f"  numpy:   {np.__version__} on the host")
    print("  clblast: " + ("pyclblast " + _version("pyclblast") if clblast else
                           "not installed (pip install 'nnfs-opencl[clblast]')"))
    header = f"  {'size':>5} {'op':>3} {'numpy':>8} {'opencl':>8} {'clblast':>8}" \
             f" {'opencl/numpy':>13} {'opencl/clblast':>15}"
    print(header)
    for size in sizes:
        for trans in ("nn", "nt", "tn"):
            flop = 2.0 * size**3
            host = flop / _numpy_gemm(size, trans, repeats) / 1e9
            ours = flop / _opencl_gemm(factory, size, trans, repeats) / 1e9
            theirs = flop / _opencl_gemm(clblast, size, trans, repeats) / 1e9 if clblast else None
            theirs_text = f"{theirs:8.1f}" if theirs else f"{'-':>8}"
            ratio_text = f"{ours / theirs:15.2f}" if theirs else f"{'-':>15}"
            print(f"  {size:5d} {trans:>3} {host:8.1f} {ours:8.1f} {theirs_text}"
                  f" {ours / host:13.2f} {ratio_text}", flush=True)


def _version(distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


def scaled_preset(scale: float):
    """The article's 10000×10000 → 5000 → 1000 → 10 network scaled by ``scale`` (0.4 is
    ``nnfs bench scaled``), as an ``nnfs bench`` preset."""
    from nnfs.bench import PRESETS

    def scaled(n: int) -> int:
        return max(1, round(n * scale))

    return replace(PRESETS["scaled"], in_dim=scaled(10000), batch=scaled(10000),
                   layers=((scaled(5000), "tanh"), (scaled(1000), "sigmoid"), (10, "sigmoid")))


def epoch_table(scale: float, epochs: int, device: object) -> None:
    """Seconds per epoch of the scaled network on the cpu and opencl backends, each against
    its own GEMM floor, timed by ``nnfs bench``'s code (``nnfs.bench.run``: runs of one epoch,
    each followed by its floor)."""
    from nnfs import bench

    preset = scaled_preset(scale)
    print(f"\nthe article's network scaled by {scale}: {preset.describe()}; seconds per epoch "
          f"(median of {epochs}, each epoch followed by its GEMM floor, as nnfs bench times)")
    results = {}
    runs: tuple[tuple[str, dict[str, Any]], ...] = (("cpu", {}), ("opencl", {"device": device}))
    for name, options in runs:
        result = bench.run(preset, name, epochs=1, repeats=epochs, **options)
        results[name] = result
        relative = "" if name == "cpu" else \
            f"   ({result.seconds_per_epoch / results['cpu'].seconds_per_epoch:.2f} × the " \
            "cpu backend's time)"
        print(f"  {name:7} {result.seconds_per_epoch:8.3f}   floor "
              f"{result.floor_seconds_per_epoch:8.3f}   ratio {result.ratio_to_floor:.3f}×"
              f"{relative}", flush=True)
        if result.warning:
            print(f"  {result.warning}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnfs_opencl.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048],
                        help="gemm sizes (default: 1024 2048)")
    parser.add_argument("--repeats", type=int, default=5, help="gemm runs per figure (5)")
    parser.add_argument("--scale", type=float, default=0.4,
                        help="scale of the article's network (default 0.4; 0 skips the epochs)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per backend (3)")
    parser.add_argument("--device", default=None,
                        help="OpenCL device (number, 'platform:device' or part of its name)")
    args = parser.parse_args(argv)
    try:
        gemm_table(args.sizes, args.repeats, args.device)
        if args.scale > 0:
            epoch_table(args.scale, args.epochs, args.device)
    except nnfs.NnfsError as error:
        print(f"python -m nnfs_opencl.bench: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
