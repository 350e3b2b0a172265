"""Data-parallel training over MPI: the processes of a job, and what they must agree on.

Start the same script on N processes with an MPI launcher (``mpiexec -n 4 python train.py``).
Each process, a *rank*, holds the same network on its own device (any backend) and computes the
gradient of its own share of every mini-batch; the gradients are summed across the ranks by one
MPI allreduce of one flat buffer per step, and every rank applies the same sum, so the weights
stay the same everywhere. N ranks with a batch of b samples each train exactly as one process
with batch N·b. This is synchronous data-parallel SGD as Horovod does it, on MPI through mpi4py
(the extra ``nnfs-core[mpi]`` brings mpi4py and MPICH)::

    world = nnfs.mpi.world()                      # every rank
    network = nnfs.inference_network(nnfs.backend(), 64, layers, seed=0)
    history = nnfs.fit(network, X, y, epochs=30, batch_size=16, eta=0.05, data_parallel=world)
    world.save(network, "model.npz")              # rank 0 writes, every rank waits

What the ranks do together, they either all do or all refuse: a check that fails on one rank
(bad data, a different network, a file it cannot read) raises :class:`nnfs.DataParallelError`
on every rank, naming the rank, instead of leaving the others waiting for it. A rank that fails
alone in the middle of training (an exception in a callback, Ctrl-C) cannot be waited for:
it prints what happened, naming itself, and aborts the whole job (``MPI_Abort``).

A rank whose script ends (``sys.exit()``, at any status, or its last line) tells the others
so, then waits for them to end theirs. A rank that waits for it in a call of the
:class:`World` (``barrier``, ``save``, the start of ``fit``...) hears it, and ends the job
naming both, instead of waiting forever.

Importing this module does not import mpi4py (importing ``mpi4py.MPI`` starts MPI);
:func:`world` does.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .arrays import Vector
from .errors import DataParallelError, MpiUnavailable, NnfsError, NnfsTypeError, TrainingDiverged

if TYPE_CHECKING:
    from types import TracebackType

    from .factory import Factory
    from .network import InferenceNetwork

#: What brings mpi4py and an MPI runtime with plain pip.
MPI_EXTRA = "pip install 'nnfs-core[mpi]'"

#: Seconds a failing rank waits, after printing why, before it aborts the job: MPICH's
#: launcher was seen to drop the end of a traceback that the abort overtook.
ABORT_GRACE_SECONDS = 0.2

#: The message tag of the notice a rank sends every other rank when its script ends.
EXIT_TAG = 0x6E66
#: Seconds a rank waiting in a call of the World gives a rank whose script has ended to be
#: seen arriving there too (it may have arrived just before it ended) before it ends the job.
EXIT_NOTICE_GRACE_SECONDS = 2.0

#: Environment variables in which MPI launchers give the number of processes of the job:
#: Open MPI's mpiexec, the PMI of MPICH's and Intel MPI's Hydra, MVAPICH.
LAUNCHER_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")


def _launcher_number(names: tuple[str, ...], environ: Mapping[str, str] | None, minimum: int,
                     default: int) -> int:
    """The first of the variables ``names`` that holds a whole number ≥ ``minimum``."""
    environ = os.environ if environ is None else environ
    for name in names:
        value = environ.get(name, "").strip()
        if value.isdigit() and int(value) >= minimum:
            return int(value)
    return default


def launched_size(environ: dict[str, str] | None = None) -> int:
    """How many processes an MPI launcher started this job with, read from the variables it
    sets (:data:`LAUNCHER_SIZE_VARIABLES`); 1 when none is set, as when run without one."""
    return _launcher_number(LAUNCHER_SIZE_VARIABLES, environ, 1, 1)


#: The variables in which MPI launchers give each process its rank (Open MPI, MPICH/Hydra and
#: Intel MPI, MVAPICH).
LAUNCHER_RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK")


def launched_rank(environ: dict[str, str] | None = None) -> int:
    """This process's rank as its MPI launcher set it (:data:`LAUNCHER_RANK_VARIABLES`); 0 when
    none is set, as when run without one. Read without starting MPI."""
    return _launcher_number(LAUNCHER_RANK_VARIABLES, environ, 0, 0)


def _mpi() -> Any:
    """mpi4py's MPI module (importing it starts MPI), or MpiUnavailable naming the extra."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise MpiUnavailable(
            f"data-parallel training needs mpi4py and an MPI library: {MPI_EXTRA} "
            "(or, on a cluster with its own MPI, pip install mpi4py alone; see the user guide's "
            "data-parallel page) "
            f"[{error}]") from None
    except RuntimeError as error:  # mpi4py is there, but finds no MPI library to load
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise MpiUnavailable(
            f"mpi4py is installed but cannot load an MPI library ({first}): {MPI_EXTRA} "
            "brings MPICH; with a system MPI, put its libmpi on LD_LIBRARY_PATH or set "
            "MPI4PY_LIBMPI to it") from None
    return MPI


@dataclass(frozen=True)
class CommunicationStats:
    """What a :class:`World` has summed for training, for benchmarks and logs.

    ``allreduce_calls`` and ``allreduce_seconds`` count the gradient exchanges of training
    steps (the copies between device and host included, when there are any); ``allreduce_bytes``
    is the payload those calls summed, per rank, added up (a ring allreduce moves about twice
    that over each rank's link).
    """

    allreduce_calls: int
    allreduce_seconds: float
    allreduce_bytes: int


def _checksum(host: np.ndarray) -> np.ndarray:
    """The sum (modulo 2⁶⁴) and the exclusive or of the 64-bit words of ``host``'s bytes: any
    one differing bit changes both. A pass at memory speed (CRC-32 was 8 times slower here)."""
    data = memoryview(np.ascontiguousarray(host)).cast("B")
    whole = len(data) // 8 * 8
    words = np.frombuffer(data, dtype=np.uint64, count=whole // 8)
    tail = int.from_bytes(bytes(data[whole:]), "little")  # the last 0 to 7 bytes
    total = (int(words.sum(dtype=np.uint64)) + tail) % 2**64  # numpy's array sum wraps quietly
    folded = int(np.bitwise_xor.reduce(words, initial=np.uint64(0))) ^ tail
    return np.array([total, folded], dtype=np.uint64)


def _rank_list(ranks: list[int]) -> str:
    return ("rank " if len(ranks) == 1 else "ranks ") + ", ".join(map(str, ranks))


class World:
    """The processes of a data-parallel job, on an mpi4py communicator. Make it with
    :func:`world`, on every rank.

    ``rank`` is this process's number (0 to ``size − 1``), ``local_rank`` its number among the
    processes of its own machine (to choose a device: ``nnfs.backend("cuda",
    device=world.local_rank)``), ``comm`` the mpi4py communicator. Every method that
    communicates (all but ``stats`` and ``is_root``) is collective: call it on every rank, at
    the same point.
    """

    def __init__(self, comm: Any, mpi: Any):
        self.comm = comm
        self._mpi = mpi
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        with_peers = comm.Split_type(mpi.COMM_TYPE_SHARED, key=self.rank)
        try:
            self.local_rank = with_peers.Get_rank()
        finally:
            with_peers.Free()
        self.library = " ".join(mpi.Get_library_version().strip().splitlines()[0].split())
        self._calls = 0
        self._seconds = 0.0
        self._bytes = 0
        # a communicator of its own for the notices of ranks whose script ended, and for the
        # barrier at the end: neither may match a collective call of the script's
        self._exits = comm.Dup() if self.size > 1 else None

    @property
    def is_root(self) -> bool:
        """True on rank 0, the rank that writes files."""
        return self.rank == 0

    def __repr__(self) -> str:
        return (f"World(rank {self.rank} of {self.size}, local rank {self.local_rank}, "
                f"{self.library})")

    def stats(self) -> CommunicationStats:
        """The gradient exchanges so far (see :class:`CommunicationStats`)."""
        return CommunicationStats(self._calls, self._seconds, self._bytes)

    def barrier(self) -> None:
        """Wait until every rank got here (or end the job if a rank ended its script)."""
        self._rendezvous("world.barrier()")

    # --- a rank whose script ended ----------------------------------------------------------

    def _rendezvous(self, what: str) -> None:
        """Wait, polling, until every rank got here; meanwhile listen for the notice of a rank
        whose script has ended, and if that rank does not arrive, end the job (MPI_Abort)
        naming it: it never will. Every collective call of the World starts with this, so
        that the blocking call after it finds every rank there."""
        if self.size == 1:
            return
        request = self.comm.Ibarrier()
        status = self._mpi.Status()
        noticed, delay = None, 1e-5
        exits = self._exits
        assert exits is not None  # a job of more than one process listens for exits
        while not request.Test():
            if noticed is None and exits.Iprobe(source=self._mpi.ANY_SOURCE,
                                          tag=EXIT_TAG, status=status):
                noticed = (status.Get_source(), time.monotonic())
            if noticed is not None and time.monotonic() - noticed[1] > EXIT_NOTICE_GRACE_SECONDS:
                gone = noticed[0]
                self.abort(what, DataParallelError(
                    f"rank {gone} of {self.size} ended its script (sys.exit(), or its end) "
                    f"while rank {self.rank} waits for it in {what}", [gone]))
            time.sleep(delay)
            delay = min(2 * delay, 0.01)

    def _script_ended(self) -> None:
        """At the end of this rank's script (atexit): tell every other rank, then wait for all
        of them to end theirs, as MPI_Finalize would, and take their notices."""
        mpi = self._mpi
        if mpi.Is_finalized() or self._exits is None:
            return
        nothing = np.zeros(0, dtype=np.uint8)
        sent = [self._exits.Isend([nothing, mpi.BYTE], dest=rank, tag=EXIT_TAG)
                for rank in range(self.size) if rank != self.rank]
        request = self._exits.Ibarrier()
        delay = 1e-4
        while not request.Test():
            time.sleep(delay)
            delay = min(2 * delay, 0.05)
        for _ in range(self.size - 1):  # every notice was sent before the barrier: take them
            self._exits.Recv([nothing, mpi.BYTE], source=mpi.ANY_SOURCE, tag=EXIT_TAG)
        mpi.Request.Waitall(sent)
        self._exits.Free()
        self._exits = None

    # --- all or none ------------------------------------------------------------------------

    def together(self, what: str, action: Callable[[], Any]) -> Any:
        """Run ``action()`` on every rank; if it raised on any, raise
        :class:`nnfs.DataParallelError` on every rank, naming the ranks and their errors.

        The way to do something that can fail on one rank alone (read a file, allocate device
        memory) without leaving the other ranks waiting for it at the next collective call.
        """
        try:
            result, failure = action(), None
        except Exception as error:
            result, failure = None, error
        self._rendezvous(what)
        texts = self.comm.allgather(
            None if failure is None else f"{type(failure).__name__}: {failure}")
        failed = [rank for rank, text in enumerate(texts) if text is not None]
        if failed:
            alike = len({texts[rank] for rank in failed}) == 1
            details = (texts[failed[0]] if alike else
                       "; ".join(f"rank {rank}: {texts[rank]}" for rank in failed))
            raise DataParallelError(
                f"{what} failed on {_rank_list(failed)} of {self.size}: {details}", failed
            ) from failure
        return result

    def same_everywhere(self, what: str, facts: dict[str, object]) -> None:
        """Raise :class:`nnfs.DataParallelError` on every rank unless every rank has the same
        ``facts`` (small values: shapes, dtypes, settings); the message names each rank that
        differs from rank 0, and how."""
        self._rendezvous(what)
        everyone = self.comm.allgather(facts)
        reference = everyone[0]
        differences, ranks = [], []
        for rank, theirs in enumerate(everyone[1:], start=1):
            keys = [key for key in reference if theirs.get(key) != reference[key]]
            if keys:
                ranks.append(rank)
                differences.append("; ".join(
                    f"rank {rank} has {key} {theirs.get(key)!r} where rank 0 has "
                    f"{reference[key]!r}" for key in keys))
        if ranks:
            raise DataParallelError(
                f"{what}: the ranks must agree, but {'; '.join(differences)}", ranks)

    def abort(self, what: str, error: BaseException, *, detail: str | None = None) -> None:
        """Print what failed on this rank, naming it, and end the whole job (``MPI_Abort``):
        the other ranks are waiting for this one in a collective call and would never return.
        With one rank there is nobody to wait: nothing is done, and the caller re-raises.

        ``detail`` goes first (by default the traceback, except for nnfs's own errors, which
        say it all). The message is one write, and the launcher gets a moment to pass it on:
        once the job is aborted, output still on its way from this rank can be lost."""
        if self.size == 1:
            return
        if detail is None:
            detail = "" if isinstance(error, NnfsError) else "".join(
                traceback.format_exception(type(error), error, error.__traceback__))
        sys.stderr.write(
            f"{detail}nnfs: rank {self.rank} of {self.size} failed during {what}: "
            f"{type(error).__name__}: {error}\n"
            f"nnfs: aborting the MPI job, so that the other ranks do not wait for rank "
            f"{self.rank} forever\n")
        sys.stderr.flush()
        time.sleep(ABORT_GRACE_SECONDS)
        self.comm.Abort(1)

    def _abort_on_uncaught_exceptions(self) -> None:
        """Make an exception that ends this rank's script end the whole job, as
        ``python -m mpi4py script.py`` does: otherwise MPI waits for this rank at exit, and the
        other ranks wait for it in their next collective call, forever. Errors that every rank
        raises together (DataParallelError, TrainingDiverged) just end each rank."""
        previous = sys.excepthook
        if getattr(previous, "_nnfs_world", None) is not None or self.size == 1:
            return

        def hook(kind: type[BaseException], error: BaseException,
                 trace: TracebackType | None) -> None:
            if collective_error(error):
                previous(kind, error, trace)
            elif previous is sys.__excepthook__:  # the traceback, in abort's single write
                self.abort("the script", error,
                           detail="".join(traceback.format_exception(kind, error, trace)))
            else:  # someone else's hook shows the error its own way
                previous(kind, error, trace)
                self.abort("the script", error, detail="")

        hook.__dict__["_nnfs_world"] = self  # marks the hook as this world's
        sys.excepthook = hook

    # --- weights ----------------------------------------------------------------------------

    def _check_same(self, host: np.ndarray, when: str) -> None:
        """Raise DataParallelError on every rank unless every rank's ``host`` holds the same
        bytes: each rank sends a checksum of its bytes (16 bytes), every rank gathers them."""
        sent = _checksum(host)
        received = np.empty((self.size, 2), dtype=np.uint64)
        self.comm.Allgather(sent, received)
        differ = [rank for rank in range(1, self.size)
                  if not np.array_equal(received[rank], received[0])]
        if differ:
            raise DataParallelError(
                f"the weights of {_rank_list(differ)} differ from rank 0's {when} (checksums "
                + ", ".join(f"rank {rank}: {received[rank][0]:016x}{received[rank][1]:016x}"
                            for rank in [0, *differ])
                + "): every rank must apply the same update to the same weights. Did a rank "
                "change its network outside nnfs.fit, or load other weights?", differ)

    def check_same_weights(self, network: InferenceNetwork, when: str = "") -> None:
        """Raise :class:`nnfs.DataParallelError` on every rank, naming the ranks, unless every
        rank's ``network`` holds the same parameters, bit for bit. Cheap: each rank reads its
        parameters and sends a 16-byte checksum. ``fit`` runs this after every epoch."""
        host = self.together("reading the weights to compare them",
                             lambda: network.factory.to_host(network.parameters))
        self._check_same(host, when or "here")

    # --- files ------------------------------------------------------------------------------

    def save(self, network: InferenceNetwork, path: str | os.PathLike[str],
             **options: Any) -> Path:
        """Save ``network`` on rank 0 only (``nnfs.save``, with ``options``), after checking
        that every rank holds the same weights; every rank returns once the file is written, or
        raises :class:`nnfs.DataParallelError` if rank 0 could not write it."""
        from .io import save

        self.check_same_weights(network, "before saving")
        outcome = None
        if self.rank == 0:
            try:
                save(network, path, **options)
            except Exception as error:
                outcome = f"{type(error).__name__}: {error}"
        outcome = self.comm.bcast(outcome, root=0)
        if outcome is not None:
            raise DataParallelError(f"rank 0 could not save the model: {outcome}", [0])
        return Path(path)

    def load(self, path: str | os.PathLike[str],
             target: Factory | InferenceNetwork) -> InferenceNetwork:
        """``nnfs.load(path, target)`` on every rank (each reads the file itself, so it must be
        where every rank can read it); then every rank holds the same weights, or every rank
        raises :class:`nnfs.DataParallelError` naming the ranks that could not load it."""
        from .io import load

        network = self.together(f"loading {str(path)!r}", lambda: load(path, target))
        try:
            self.check_same_weights(network, f"after loading {str(path)!r}")
        except NnfsError:
            if network is not target:
                network.release()
            raise
        return network


def world(comm: Any = None) -> World:
    """The processes of this MPI job, as a :class:`World` (call on every rank).

    ``comm``: an mpi4py communicator; by default ``MPI.COMM_WORLD``, all the processes the
    launcher started. Run without a launcher, the world is this one process. Raises
    :class:`nnfs.MpiUnavailable`, naming the extra ``nnfs-core[mpi]``, when mpi4py or an MPI
    library is missing.

    With more than one rank, an exception that ends one rank's script from then on ends the
    whole job (``MPI_Abort``, after the traceback and a line naming the rank), as ``python -m
    mpi4py script.py`` does, rather than leave the other ranks waiting for it.
    """
    mpi = _mpi()
    if comm is None:
        comm = mpi.COMM_WORLD
    elif not isinstance(comm, mpi.Comm):
        raise NnfsTypeError(f"nnfs.mpi.world: comm must be an mpi4py communicator, got "
                            f"{type(comm).__name__}")
    made = World(comm, mpi)
    made._abort_on_uncaught_exceptions()
    if made.size > 1:
        atexit.register(made._script_ended)
    return made


def as_world(value: object, what: str) -> World:
    """``value`` as a World: a World, or True for :func:`world`."""
    if value is True:
        return world()
    if not isinstance(value, World):
        raise NnfsTypeError(f"{what} must be nnfs.mpi.world() (or True), got "
                            f"{type(value).__name__}")
    return value


# --- summing the gradient -----------------------------------------------------------------------

class GradientSum:
    """Sums a training network's gradient, and the cost of its batch, across the ranks: the
    step between computing the gradient and applying it.

    Two ways, chosen once for the whole job (every rank must take the same):

    * **host** (any backend): the gradient is read into a host buffer allocated here, one
      element longer than the gradient, whose last element carries the batch's cost; one
      ``MPI_Allreduce`` sums it in place; the gradient is written back.
    * **device** (a backend whose ``capabilities.collective`` names a library, on every rank:
      CUDA with NCCL): the backend sums the gradient in place on the device, with no host copy;
      the cost, a single number, goes through MPI.

    Calling it with this rank's cost sum returns the sum over all ranks.
    """

    def __init__(self, world: World, gradient: Vector, device: bool):
        factory = gradient.factory
        self.world = world
        self.factory = factory
        size = gradient.size
        self.nbytes = size * factory.itemsize
        self.device = device
        if device:
            self._sum_on_device = factory.backend.allreduce(gradient, world.comm)
            self.buffer = np.zeros(1, dtype=np.float64)
            self.cost = self.buffer
        else:
            self.buffer = np.zeros(size + 1, dtype=factory.numpy_dtype)
            self.host_gradient = self.buffer[:size].reshape(1, size)  # one "sample" of size
            self.device_gradient = gradient.as_matrix(size, 1)
            self.cost = self.buffer[size:]
            self.nbytes += factory.itemsize
        self._in_place = world._mpi.IN_PLACE
        self._sum = world._mpi.SUM

    @property
    def kind(self) -> str:
        return "device" if self.device else "host"

    def __call__(self, cost_sum: float) -> float:
        world = self.world
        started = time.perf_counter()
        if self.device:
            self._sum_on_device()
            self.cost[0] = cost_sum
            world.comm.Allreduce(self._in_place, self.buffer, op=self._sum)
        else:
            self.factory.backend.read_samples(self.device_gradient, self.host_gradient)
            self.cost[0] = cost_sum
            world.comm.Allreduce(self._in_place, self.buffer, op=self._sum)
            self.factory.backend.write_samples(self.host_gradient, self.device_gradient)
        world._seconds += time.perf_counter() - started
        world._calls += 1
        world._bytes += self.nbytes
        return float(self.cost[0])

    def check_same(self, parameters: Vector, when: str) -> None:
        """:meth:`World.check_same_weights` through this object's host buffer (no allocation);
        the device way reads the parameters into a new host array."""
        if self.device:
            host = self.factory.to_host(parameters)
        else:
            self.factory.backend.read_samples(parameters.as_matrix(parameters.size, 1),
                                       self.host_gradient)
            host = self.host_gradient
        self.world._check_same(host, when)

    def broadcast(self, parameters: Vector) -> None:
        """Give every rank rank 0's ``parameters``."""
        world = self.world
        if self.device:  # once, at the start: a host copy is fine
            host = self.factory.to_host(parameters)
            world.comm.Bcast(host, root=0)
            if world.rank != 0:
                self.factory.backend.write(host, parameters)
            return
        matrix = parameters.as_matrix(parameters.size, 1)
        self.factory.backend.read_samples(matrix, self.host_gradient)
        world.comm.Bcast(self.host_gradient, root=0)
        if world.rank != 0:
            self.factory.backend.write_samples(self.host_gradient, matrix)


def device_collective(world: World, factory: Factory) -> bool:
    """Whether every rank's backend can sum on its device with the same library (so the
    device way of :class:`GradientSum` can be used by all); asked on every rank."""
    names = world.comm.allgather(factory.capabilities.collective)
    return names[0] is not None and all(name == names[0] for name in names)


def collective_error(error: BaseException) -> bool:
    """True for the errors data-parallel training raises on every rank at once (decided from
    numbers every rank has), which need no abort."""
    return isinstance(error, (TrainingDiverged, DataParallelError))
