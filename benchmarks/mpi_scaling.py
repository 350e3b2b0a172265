"""Data-parallel scaling on this machine (1 and 2 ranks), and on paper (8 and 64 ranks).

    python benchmarks/mpi_scaling.py [mid|scaled] [--ranks 1 2] [--rounds 3] [--repeats 3]
                                     [--threads T]

Runs ``nnfs bench PRESET --mpi --json`` under ``mpiexec -n R`` for each R, round after round
(interleaved, so that a machine busy with other work slows every configuration alike), with the
BLAS threads of each rank set to cores / R so that every configuration uses the whole machine
and no more (or to --threads T, say 1, to compare one core per rank). The preset's batch is
split across the ranks (the same training on any R: strong scaling). Prints, per R, the median
time per epoch (one step), the share of it spent summing gradients (waiting for the slowest
rank included), the exchange alone, the allreduce payload per step, and the speed-up over one
process without MPI.

Then, on paper, what a ring allreduce of the article's network (10000 → 5000 tanh → 1000
sigmoid → 10 sigmoid, 55 million float32 parameters) costs at 8 and 64 ranks on 100 Gb/s links,
set against the article's own step times (batch 10000: 6.8 s on a 4-core i7-4790k, 0.225 s on a
GTX 1080 Ti), with the batch split across the ranks (strong) or 10000 per rank (weak).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from cost_models import ring_allreduce_seconds  # benchmarks/cost_models.py, beside this file

from nnfs import bench

#: The article's seconds per epoch (one step of batch 10000): 68 s and 2.25 s for 10 epochs.
ARTICLE_STEP_SECONDS = {"CPU (4-core i7-4790k)": 6.8, "GPU (GTX 1080 Ti)": 0.225}
ARTICLE_BATCH = 10000


def mpiexec() -> str:
    found = (shutil.which("mpiexec", path=str(Path(sys.executable).parent))
             or shutil.which("mpiexec"))
    if found is None:
        sys.exit("no mpiexec: pip install 'nnfs-core[mpi]'")
    return found


def run(preset: str, ranks: int, repeats: int, epochs: int | None,
        threads_per_rank: int | None) -> dict:
    threads = str(threads_per_rank or max(1, (os.cpu_count() or 1) // ranks))
    env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
               MKL_NUM_THREADS=threads)
    command = [mpiexec(), "-n", str(ranks), sys.executable, "-m", "nnfs", "bench", preset,
               "--mpi", "--json", "--repeats", str(repeats)]
    if epochs:
        command += ["--epochs", str(epochs)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return json.loads(result.stdout)


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1e3:9.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", nargs="?", default="mid", choices=["mid", "scaled", "tiny"])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads per rank (default: cores / ranks)")
    args = parser.parse_args()

    load_before = os.getloadavg()
    results: dict[int, list[dict]] = {ranks: [] for ranks in args.ranks}
    for round_ in range(args.rounds):
        for ranks in args.ranks:
            results[ranks].append(run(args.preset, ranks, args.repeats, args.epochs,
                                      args.threads))
            print(f"round {round_ + 1}: {ranks} rank(s) done", file=sys.stderr)

    first = results[args.ranks[0]][0]
    threads = args.threads or "cores / ranks"
    print(f"nnfs data-parallel fit, preset {args.preset} ({first['backend']} {first['dtype']}, "
          f"{first['library']}), {os.cpu_count()} cores, BLAS threads per rank: {threads}; "
          f"medians of {args.rounds} interleaved rounds of {args.repeats} runs; load average "
          f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    alone = [r["single_process_seconds_per_epoch"] for runs in results.values() for r in runs
             if r["single_process_seconds_per_epoch"] is not None]
    baseline = statistics.median(alone) if alone else None
    if baseline is not None:
        print(f"  one process, no MPI:     {milliseconds(baseline)} per epoch")
    for ranks, runs in results.items():
        epoch = statistics.median(r["seconds_per_epoch"] for r in runs)
        share = statistics.median(r["allreduce_share"] for r in runs)
        exchange = statistics.median(r["allreduce_alone_seconds"] for r in runs)
        spread = (min(r["seconds_per_epoch"] for r in runs),
                  max(r["seconds_per_epoch"] for r in runs))
        speedup = f", {baseline / epoch:.2f}× one process" if baseline else ""
        print(f"  {ranks} rank(s), {runs[0]['batch_per_rank']:>5} per rank: {milliseconds(epoch)} "
              f"per epoch (runs {spread[0] * 1e3:.2f} to {spread[1] * 1e3:.2f} ms){speedup}; "
              f"allreduce {share:.1%} of it (waits included), the exchange alone "
              f"{exchange * 1e3:.3f} ms; {runs[0]['bytes_per_step']} bytes per rank per step "
              f"({runs[0]['ring_bytes_per_rank_per_step']:.0f} over each link in a ring)")

    parameters = bench.parameter_count(bench.PRESETS["article"])
    nbytes = parameters * 4
    print(f"\nOn paper: the article's network, {parameters} float32 parameters "
          f"({nbytes / 1e6:.1f} MB of gradient), ring allreduce on 100 Gb/s links")
    for ranks in (8, 64):
        reduce = ring_allreduce_seconds(nbytes, ranks, 100e9)
        moved = 2 * (ranks - 1) / ranks * nbytes
        print(f"  {ranks:>2} ranks: {moved / 1e6:.1f} MB in and out of each rank per step, "
              f"{reduce * 1e3:.1f} ms")
        for device, step in ARTICLE_STEP_SECONDS.items():
            strong = step / (step / ranks + reduce)
            weak = step / (step + reduce)
            print(f"      {device}: batch {ARTICLE_BATCH} split ({ARTICLE_BATCH // ranks} per "
                  f"rank): {strong:.1f}× one device ({strong / ranks:.0%} efficiency); "
                  f"{ARTICLE_BATCH} per rank: {weak:.0%} efficiency")
    return 0


if __name__ == "__main__":
    sys.exit(main())
