"""kernels.cu's optimizer step and dropout mask: their codes are nnfs's kinds, the numbers of a
step sit where nnfs.kinds.Hyper says, and each plan uploads the step's numbers on the stream
ahead of its kernel, every time it runs. (Their arithmetic: the kit over the stand-in and the
recorder; NVRTC compiling them, with no float64 in the float32 kernels:
test_cuda_backend.py.)"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("nnfs_cuda", reason="nnfs-cuda is not installed")

from cuda_standin import StandInCudaFactory

from nnfs.kinds import HYPER_SIZE, Hyper, OptimizerKind
from nnfs_cuda import kernels


def test_the_optimizer_codes_are_nnfs_kinds():
    assert {kind.upper() for kind in OptimizerKind} == set(kernels.enum("Optimizer"))
    for kind in OptimizerKind:
        assert kernels.optimizer_code(kind) == kernels.enum("Optimizer")[kind.upper()]


def test_the_hyper_layout_is_nnfs_kinds_hyper():
    cuda = kernels.enum("Hyper")
    names = {"MOMENTUM": "MOMENTUM_RATE"}  # MOMENTUM is the optimizer's name in kernels.cu
    assert {names.get(slot.name, slot.name): int(slot) for slot in Hyper} == cuda
    assert len(cuda) == HYPER_SIZE


@pytest.mark.parametrize("operation", ["optimizer_step", "dropout_mask"])
def test_each_run_uploads_its_numbers_before_its_kernel(operation):
    factory = StandInCudaFactory("float32")
    backend, layer = factory.backend, factory.backend._device
    with factory.vector(10) as p, factory.vector(10) as g, factory.matrix(2, 5) as mask:
        if operation == "optimizer_step":
            host = np.zeros(HYPER_SIZE)
            plan = backend.optimizer_step(OptimizerKind.SGD, p, g, (), None, host)
        else:
            host = np.zeros(2)
            plan = backend.dropout_mask(mask, 0.5, 1, 0, host)
        before = len(layer.queue)
        plan()
        host[0] = 1.0  # the next step's numbers, written as soon as the plan returned
        plan()
        queued = layer.queue[before:]
        layer.synchronize()
    from cuda_standin import KERNEL_MATH

    # upload, kernel; upload, kernel: each upload holds the numbers of its own step
    assert [item.func for item in queued] == [np.copyto, KERNEL_MATH[operation]] * 2
    assert queued[0].args[1][0] == 0.0 and queued[2].args[1][0] == 1.0
