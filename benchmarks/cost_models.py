"""Costs on paper: what data-parallel training would cost on hardware this machine does not
have, worked out from the sizes involved. No nnfs code depends on these; the benchmarks that
print figures next to measured ones do.

    python benchmarks/cost_models.py [--parameters N] [--itemsize 4]
"""

from __future__ import annotations

import argparse

#: Link speed of the figures on paper (100 Gb/s Ethernet or InfiniBand EDR).
LINK_BITS_PER_SECOND = 100e9


def ring_allreduce_seconds(nbytes: int, ranks: int, link_bits_per_second: float,
                           latency_seconds: float = 5e-6) -> float:
    """The time a ring allreduce of ``nbytes`` per rank takes across ``ranks`` ranks, each on a
    link of ``link_bits_per_second``: every rank sends (and receives) ``2·(N−1)/N·nbytes`` in
    ``2·(N−1)`` steps, each paying ``latency_seconds``. Bandwidth-optimal; it ignores
    contention and the time to add."""
    if ranks < 2:
        return 0.0
    moved = 2 * (ranks - 1) / ranks * nbytes
    return moved * 8 / link_bits_per_second + 2 * (ranks - 1) * latency_seconds


def _bytes_text(count: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{count:.0f} B"


def on_paper(parameters: int, itemsize: int = 4, ranks: tuple[int, ...] = (8, 64),
             link_bits_per_second: float = LINK_BITS_PER_SECOND) -> list[str]:
    """What a ring allreduce of a network's gradient costs per step at ``ranks`` ranks."""
    nbytes = parameters * itemsize
    lines = []
    for count in ranks:
        moved = 2 * (count - 1) / count * nbytes
        seconds = ring_allreduce_seconds(nbytes, count, link_bits_per_second)
        lines.append(f"{count:>4} ranks: each sends and receives {_bytes_text(moved)} per step, "
                     f"{seconds * 1e3:.3f} ms at {link_bits_per_second / 1e9:.0f} Gb/s")
    return lines


def main() -> int:
    from nnfs import bench

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parameters", type=int,
                        default=bench.parameter_count(bench.PRESETS["article"]),
                        help="parameters of the network (default: the article's)")
    parser.add_argument("--itemsize", type=int, default=4, help="bytes per parameter")
    args = parser.parse_args()
    print(f"a ring allreduce of {args.parameters} parameters of {args.itemsize} bytes:")
    for line in on_paper(args.parameters, args.itemsize):
        print("  " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
