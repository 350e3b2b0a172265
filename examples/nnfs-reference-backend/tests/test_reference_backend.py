"""The reference backend (examples/nnfs-reference-backend), installed in the test environment,
passes the conformance kit through its documented command.

It is not a dependency of anything: ``bash .ci/run`` installs it into the test environment, as a
backend author installs theirs. (tests/test_conformance.py runs the same checks in process on
every installed backend, this one included.)
"""

from __future__ import annotations

from importlib import metadata

import pytest

pytest.importorskip("nnfs_reference", reason="nnfs-reference-backend is not installed here: "
                    "pip install ./examples/nnfs-reference-backend")

import nnfs
from conftest import run_python
from nnfs.testing import CHECKS


@pytest.fixture(scope="module")
def reference_installed():
    try:
        metadata.distribution("nnfs-reference-backend")
    except metadata.PackageNotFoundError:
        pytest.fail("nnfs-reference-backend is not installed in this environment; bash .ci/run "
                    "installs it, or: pip install -e examples/nnfs-reference-backend")


def test_the_kit_passes_on_the_reference_backend(reference_installed):
    result = run_python("-m", "nnfs.testing", "reference")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"reference: {len(CHECKS)} passed, 0 failed, 0 skipped" in result.stdout
    assert result.stderr == ""


def test_it_is_listed_as_a_third_party_backend(reference_installed):
    row = next(info for info in nnfs.backends() if info.name == "reference")
    assert row.available and row.distribution == "nnfs-reference-backend"
    assert row.dtypes == ("float32",)


def test_it_refuses_the_dtype_it_declares_unsupported(reference_installed):
    with pytest.raises(nnfs.UnsupportedOperation, match="does not support float64; it supports "
                                                        "float32"):
        nnfs.backend("reference", "float64")


def test_it_runs_the_article_example(reference_installed):
    result = run_python("-m", "nnfs", "demo", "--backend", "reference")
    assert result.returncode == 0, result.stderr
    assert "backend: reference float32" in result.stdout
    assert "untrained output: [0.4352" in result.stdout


def test_its_nrm2_scales_as_blas_does_in_float64_too(reference_installed):
    """The README says float64 is one word away: with it, nrm2 must still neither overflow
    (1e200²) nor underflow (1e-200²), so the kit's nrm2 check passes in both dtypes."""
    from nnfs.testing.checks import check_nrm2_extremes
    from nnfs_reference.backend import ReferenceBackend

    class WithFloat64(ReferenceBackend):
        dtypes = ("float32", "float64")

    for dtype in WithFloat64.dtypes:
        check_nrm2_extremes(nnfs.Factory(WithFloat64(dtype)))
