"""The conformance kit: the checks every nnfs backend passes, for backend authors.

Run it against any installed backend::

    python -m nnfs.testing NAME            # every dtype the backend declares
    python -m nnfs.testing NAME --dtype float32 -k gemm

It exits with status 0 when the backend conforms and 1 when a check fails. From Python,
:func:`run` returns the results, and :data:`CHECKS` lists the checks, each a function taking a
factory, so a backend's own pytest suite can run them one by one::

    import pytest, nnfs
    from nnfs.testing import CHECKS, CheckSkipped

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
    def test_conformance(check):
        try:
            check.function(nnfs.backend("mybackend"))
        except CheckSkipped as reason:
            pytest.skip(str(reason))

What the checks cover: every factory operation against numpy over awkward shapes (1×1, one
row, one column, non-square, both transposes, alpha and beta other than 0 and 1, column views);
transfer and views; the allocation counter; release and ``with``; synchronize and the training
loop's synchronisation cadence; no allocation during epochs; the article's example; gradients
against finite differences; training against a numpy reference and against the cpu backend;
errors for bad input; outputs that ignore what they held (NaN included), host copies that
are private and C-ordered, costs at saturated outputs; and that whatever the backend declares
unsupported (operations, dtypes) raises :class:`nnfs.UnsupportedOperation` rather than failing
some other way. A check of an operation declared unsupported is reported as skipped
(:class:`DeclaredUnsupported`, "skipped (declared unsupported)"), not as passed.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

import nnfs
from nnfs._clash import require_nnfs_core

require_nnfs_core("nnfs.testing")  # the kit needs nnfs-core's nnfs, not the other 'nnfs'

from . import training_checks  # noqa: E402, F401 - registers the checks of optimizers and dropout
from .checks import CHECKS, Check, CheckSkipped, DeclaredUnsupported  # noqa: E402


@dataclass(frozen=True)
class Result:
    check: str
    dtype: str
    outcome: str  # "pass", "fail", "error" or "skip"
    message: str = ""
    seconds: float = 0.0
    declared_unsupported: bool = False  # a skip: what it checks is declared unsupported


def run_check(check: Check, factory: nnfs.Factory) -> Result:
    """Run one check on ``factory``; never raises for a failing backend."""
    start = time.perf_counter()
    try:
        note = check.function(factory)
    except CheckSkipped as reason:
        return Result(check.name, factory.dtype, "skip", str(reason), time.perf_counter() - start,
                      isinstance(reason, DeclaredUnsupported))
    except AssertionError as failure:
        return Result(check.name, factory.dtype, "fail", str(failure) or "assertion failed",
                      time.perf_counter() - start)
    except Exception as error:  # the backend raised something the contract does not allow
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        return Result(check.name, factory.dtype, "error", text, time.perf_counter() - start)
    return Result(check.name, factory.dtype, "pass", note or "", time.perf_counter() - start)


def declared_dtypes(name: str) -> tuple[str, ...]:
    """The dtypes the installed backend ``name`` (``NAME`` or ``NAME:key=value,...``) says it
    supports here."""
    from nnfs.spec import parse_backend

    name = parse_backend(name)[0]
    for info in nnfs.backends():
        if info.name == name:
            if not info.available:
                raise nnfs.BackendUnavailable(
                    f"the {name} backend cannot be used here: {info.reason}")
            return info.dtypes
    nnfs.backend(name)  # raises BackendNotFound with the installed names
    raise AssertionError("unreachable")


def run(name: str, dtypes: tuple[str, ...] | None = None, select: str | None = None,
        report=None) -> list[Result]:
    """Run the checks (those whose name contains ``select``) on the backend ``name``
    (``NAME`` or ``NAME:key=value,...``, options as everywhere a backend is named) for each
    dtype; ``report`` is called with each result as it comes."""
    results = []
    for dtype in dtypes or declared_dtypes(name):
        factory = nnfs.backend(name, dtype)
        for check in CHECKS:
            if select and select not in check.name:
                continue
            result = run_check(check, factory)
            results.append(result)
            if report is not None:
                report(result)
    return results


__all__ = ["CHECKS", "Check", "CheckSkipped", "DeclaredUnsupported", "Result", "declared_dtypes",
           "run", "run_check"]
