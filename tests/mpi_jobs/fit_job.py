"""A data-parallel fit that tests/test_mpi.py starts with mpiexec; one scenario per run.

Every rank builds the network of ``--layers`` on its backend, trains on the data made from
``--samples`` and ``--data-seed`` with ``nnfs.fit(..., data_parallel=world)``, and writes
``rank<R>.json`` (its history, its weights' checksum, what it raised) into ``--out``; rank 0's
model goes to ``--out``/model.npz through ``world.save``. ``--fault`` makes one rank go wrong in
one way, to see every rank refuse, or the job end, instead of a hang.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

import numpy as np

import nnfs
from nnfs import fully_connected

FAULTS = ("none", "layers", "dtype", "data", "raise", "drift", "save-nowhere", "bad-x",
          "diverge", "validation", "validation-labels")


def data(samples: int, seed: int, features: int = 5, classes: int = 3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(samples, features))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.4).astype(int)
    return X, np.minimum(y, classes - 1)


_KEPT: list = []


def optimizer_of(name: str, eta: float):
    """--optimizer: None for plain SGD at eta, else an optimizer of nnfs.optimizers."""
    from nnfs import optimizers

    return {"sgd": None, "momentum": optimizers.SGD(eta, momentum=0.9),
            "nesterov": optimizers.SGD(eta, momentum=0.9, nesterov=True, weight_decay=0.01),
            "adam": optimizers.Adam(eta / 10, weight_decay=0.01),
            "adamw": optimizers.AdamW(eta / 10)}[name]


def architecture_of(layers: str, dropout: float = 0.0):
    """--layers, with --dropout on every hidden layer."""
    items = [item.split(":") for item in layers.split(",")]
    return [fully_connected(int(units), kind, dropout=dropout if i < len(items) - 1 else 0.0)
            for i, (units, kind) in enumerate(items)]


#: nnfs-cuda's own tests, whose stand-in and recorder two scenarios run over.
CUDA_TESTS = Path(__file__).resolve().parents[2] / "nnfs-cuda" / "tests"


def factory_of(name: str, dtype: str):
    if name == "cuda-standin":  # nnfs-cuda's factory over the numpy stand-in with its NCCL
        sys.path.insert(0, str(CUDA_TESTS))
        from cuda_standin import standin_factory_class

        return standin_factory_class(nccl=True)(dtype)
    if name == "cuda-recorder":  # nnfs-cuda's real device layer over the recording fake CuPy
        sys.path.insert(0, str(CUDA_TESTS))
        from cuda_recorder import Recorder

        from nnfs_cuda.backend import CudaBackend

        installed = Recorder(nccl=True).installed()
        installed.__enter__()  # for the whole job (kept, or collecting it would uninstall it)
        _KEPT.append(installed)
        return nnfs.Factory(CudaBackend(dtype))
    return nnfs.backend(name, dtype)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--backend", default="cpu", help="NAME, or NAME0,NAME1 one per rank")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--layers", default="7:tanh,3:softmax")
    parser.add_argument("--samples", type=int, default=49)
    parser.add_argument("--data-seed", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--eta", type=float, default=0.3)
    parser.add_argument("--validation", type=int, default=11)
    parser.add_argument("--fault", default="none", choices=FAULTS)
    parser.add_argument("--optimizer", default="sgd",
                        choices=["sgd", "momentum", "nesterov", "adam", "adamw"])
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--checkpoint", default=None, help="fit's checkpoint file")
    parser.add_argument("--resume", default=None, help="fit's checkpoint to resume")
    parser.add_argument("--stop-after", type=int, default=0, help="on_epoch returns False then")
    args = parser.parse_args()
    out = Path(args.out)

    world = nnfs.mpi.world()
    rank = world.rank
    faulty = rank == world.size - 1  # the last rank is the one that goes wrong
    names = args.backend.split(",")
    dtype = "float64" if args.fault == "dtype" and faulty else args.dtype
    factory = factory_of(names[rank % len(names)], dtype)
    layers, eta = args.layers, args.eta
    if args.fault == "layers" and faulty:
        layers = "8:tanh,3:softmax"
    if args.fault == "diverge":  # on every rank: linear layers, a step size that overflows
        layers, eta = "7:linear,3:linear", 1e12
    X, y = data(args.samples, args.data_seed + (1 if args.fault == "data" and faulty else 0))
    if args.fault == "bad-x" and faulty:
        X[3, 2] = np.nan
    Xv, yv = data(args.validation, 99 + (1 if args.fault == "validation" and faulty else 0))
    if args.fault == "validation-labels" and faulty:  # the same samples, one label changed
        yv = yv.copy()
        yv[-1] = (yv[-1] + 1) % 3
    architecture = architecture_of(layers, args.dropout)
    optimizer = optimizer_of(args.optimizer, eta)
    # a different seed on every rank: fit must start them all from rank 0's weights
    network = nnfs.inference_network(factory, X.shape[1], architecture, seed=10 + rank)

    def on_epoch(epoch, history):
        if faulty and epoch == 2 and args.fault == "raise":
            raise RuntimeError(f"rank {rank} gives up in epoch {epoch}")
        if faulty and epoch == 1 and args.fault == "drift":
            weights = nnfs.transfer(network.layers[0].weights)
            weights[0, 0] += 1e-3
            nnfs.transfer(weights, network.layers[0].weights)
        return not (args.stop_after and epoch == args.stop_after)

    report = {"rank": rank, "size": world.size, "world": repr(world)}
    try:
        history = nnfs.fit(network, X, y, epochs=args.epochs, batch_size=args.batch_size,
                           eta=eta if optimizer is None else None, optimizer=optimizer,
                           seed=7, quiet=True, validation=(Xv, yv),
                           on_epoch=on_epoch, data_parallel=world,
                           checkpoint=args.checkpoint, resume=args.resume)
        report["history"] = history.as_dict()
        report["gradient_sum"] = world.stats().allreduce_calls
        target = out / ("nowhere/model.npz" if args.fault == "save-nowhere" else "model.npz")
        world.save(network, target)
        host = nnfs.transfer(network.parameters)
        report["checksum"] = zlib.crc32(host.tobytes())
        world.load(out / "model.npz", network)  # every rank reads what rank 0 wrote
        report["loaded"] = True
    except nnfs.NnfsError as error:
        report["error"] = {"type": type(error).__name__, "message": str(error),
                           "ranks": list(getattr(error, "ranks", ()))}
    device = getattr(factory.backend, "_device", None)
    if device is not None and hasattr(device, "nccl_calls"):
        report["nccl_calls"] = device.nccl_calls
    recorder = getattr(getattr(device, "_cupy", None), "__recorder__", None)
    if recorder is not None:
        report["nccl_calls"] = recorder.nccl_calls
        report["violations"] = recorder.violations
        report["streams"] = sorted(str(stream) for stream in recorder.streams_used())
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    return 1 if "error" in report else 0


if __name__ == "__main__":
    sys.exit(main())
