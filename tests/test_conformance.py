"""The conformance kit (nnfs.testing) on every installed backend, in every declared dtype."""

from __future__ import annotations

import pytest

from nnfs.testing import CHECKS, CheckSkipped


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.name)
def test_backend_conforms(factory, check):
    try:
        check.function(factory)
    except CheckSkipped as reason:
        pytest.skip(str(reason))
