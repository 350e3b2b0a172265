"""How fast ``nnfs train --data file.csv`` reads a CSV: each reader nnfs has, on one file.

    python benchmarks/csv_reader.py [--rows 50000] [--columns 65] [--rounds 5]

Writes a CSV of ``rows`` samples of ``columns − 1`` features (six decimals) and an integer
label, with a header (50,000 × 65 is about 29 MB, the file of issue #19), then reads it with
``nnfs.data.read`` through the strict reader (the csv module), numpy's ``loadtxt`` and pandas'
C parser, and with ``pandas.read_csv`` alone for reference: in interleaved rounds, so that a
machine busy with other work slows them alike. Prints each one's median seconds and its
speed-up over the strict reader, and checks that every reader gives the very same data.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from nnfs import data


def write_csv(path: Path, rows: int, columns: int) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, columns - 1))
    y = rng.integers(0, 10, rows)
    text = io.StringIO()
    text.write(",".join([f"f{i}" for i in range(columns - 1)] + ["label"]) + "\n")
    np.savetxt(text, np.column_stack([X, y]), delimiter=",",
               fmt=["%.6f"] * (columns - 1) + ["%d"])
    path.write_text(text.getvalue())


def readers(path: Path) -> dict:
    def through(names):
        def read():
            saved = data.FAST_CSV_READERS
            data.FAST_CSV_READERS = names
            try:
                return data.read(path)
            finally:
                data.FAST_CSV_READERS = saved
        return read

    found = {"nnfs, strict reader (csv module)": through(()),
             "nnfs, through numpy.loadtxt": through(("numpy",))}
    try:
        import pandas
    except ImportError:
        print("pandas is not installed (nnfs-core[csv]): its reader is not timed")
        return found
    found["nnfs, through pandas"] = through(("pandas",))
    found["pandas.read_csv alone"] = lambda: pandas.read_csv(path)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--columns", type=int, default=65)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "data.csv"
        write_csv(path, args.rows, args.columns)
        print(f"{path.stat().st_size / 1e6:.1f} MB: {args.rows} rows × {args.columns} columns; "
              f"medians of {args.rounds} interleaved rounds")
        timed = readers(path)
        seconds: dict[str, list[float]] = {name: [] for name in timed}
        results = {}
        for _ in range(args.rounds):
            for name, read in timed.items():
                started = time.perf_counter()
                results[name] = read()
                seconds[name].append(time.perf_counter() - started)
        reference = results["nnfs, strict reader (csv module)"]
        for name, result in results.items():
            if isinstance(result, data.DataSet):
                assert np.array_equal(result.X, reference.X), name
                assert np.array_equal(result.y, reference.y), name
        baseline = statistics.median(seconds["nnfs, strict reader (csv module)"])
        for name, values in seconds.items():
            median = statistics.median(values)
            print(f"{name:<36} {median:8.3f} s   {baseline / median:6.1f}× the strict reader")


if __name__ == "__main__":
    main()
