"""What nnfs train --report and nnfs predict print (issue #19): scikit-learn's metrics where it
is installed, numpy's otherwise, to the same numbers."""

from __future__ import annotations

import numpy as np
import pytest

from nnfs import _metrics

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is the reference the numpy "
                              "metrics are compared with")


@pytest.mark.parametrize("seed", range(20))
def test_classification_metrics_are_scikit_learns_with_or_without_it(seed):
    rng = np.random.default_rng(seed)
    classes = int(rng.integers(2, 8))
    n = int(rng.integers(1, 60))
    true = rng.integers(0, classes - (seed % 3 == 0), n)  # a class that never appears
    predicted = np.where(rng.random(n) < 0.6, true, rng.integers(0, classes, n))
    if seed % 4 == 0:
        predicted[:] = true[0]  # classes never predicted: precision 0, not NaN
    ours = _metrics.classification(true, predicted, classes, use_sklearn=False)
    theirs = _metrics.classification(true, predicted, classes, use_sklearn=True)
    assert ours.accuracy == theirs.accuracy
    np.testing.assert_array_equal(ours.confusion, theirs.confusion)
    np.testing.assert_array_equal(ours.support, theirs.support)
    np.testing.assert_allclose(ours.precision, theirs.precision, rtol=0, atol=1e-15)
    np.testing.assert_allclose(ours.recall, theirs.recall, rtol=0, atol=1e-15)
    assert ours.confusion.shape == (classes, classes) and ours.confusion.sum() == n


@pytest.mark.parametrize("case", ["random", "constant-exact", "constant-wrong", "one-sample",
                                  "perfect"])
def test_regression_metrics_are_scikit_learns_with_or_without_it(case):
    rng = np.random.default_rng(len(case))
    true = rng.normal(size=40) * 100 + 7
    predicted = true + rng.normal(size=40) * 10
    if case.startswith("constant"):
        true = np.full(40, 3.5)
        predicted = true.copy() if case == "constant-exact" else true + 1
    elif case == "one-sample":
        true, predicted = true[:1], predicted[:1]
    elif case == "perfect":
        predicted = true.copy()
    ours = _metrics.regression(true, predicted, use_sklearn=False)
    theirs = _metrics.regression(true, predicted, use_sklearn=True)
    for name in ("rmse", "mae", "r2"):
        assert getattr(ours, name) == pytest.approx(getattr(theirs, name), rel=1e-12, abs=1e-12)
    if case == "random":
        from sklearn.metrics import r2_score

        assert ours.r2 == pytest.approx(r2_score(true, predicted), rel=1e-12)


def test_the_confusion_table_names_the_classes():
    result = _metrics.classification(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3)
    text = _metrics.confusion_table(result, ["cat", "dog", "emu"])
    lines = text.splitlines()
    assert lines[0].startswith("confusion matrix (rows: true class")
    assert lines[1].split() == ["cat", "dog", "emu"]
    assert lines[3].split() == ["dog", "0", "1", "1"]
    assert lines[-1].split() == ["emu", "0.5000", "1.0000", "1"]
