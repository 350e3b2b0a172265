"""What ``nnfs train`` and ``nnfs predict`` report: accuracy, a confusion matrix and each
class's precision and recall for classifiers; RMSE, MAE and R² for regression.

Computed with scikit-learn's metrics where scikit-learn is installed (the implementation its
users trust), and with numpy otherwise, to the same numbers: ``tests/test_metrics.py`` compares
the two. A class never predicted has a precision of 0, and one absent from the labels a
recall of 0 (scikit-learn's ``zero_division=0``); R² of constant targets is 1 when every
prediction is exact and 0 otherwise (scikit-learn's ``force_finite``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _sklearn_metrics():
    try:
        from sklearn import metrics
    except ImportError:
        return None
    return metrics


@dataclass(frozen=True)
class Classification:
    """Accuracy, the confusion matrix (rows: the true class, columns: the predicted one) and
    each class's precision, recall and support (samples of that class)."""

    accuracy: float
    confusion: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    support: np.ndarray


@dataclass(frozen=True)
class Regression:
    rmse: float
    mae: float
    r2: float


def classification(true: np.ndarray, predicted: np.ndarray, classes: int,
                   use_sklearn: bool = True) -> Classification:
    """The metrics of class indices ``predicted`` against ``true``, over classes
    0 .. ``classes`` − 1."""
    true, predicted = np.asarray(true, np.int64), np.asarray(predicted, np.int64)
    labels = np.arange(classes)
    metrics = _sklearn_metrics() if use_sklearn else None
    if metrics is not None:
        confusion = metrics.confusion_matrix(true, predicted, labels=labels)
        precision, recall, _, support = metrics.precision_recall_fscore_support(
            true, predicted, labels=labels, zero_division=0)
        accuracy = metrics.accuracy_score(true, predicted)
        return Classification(float(accuracy), confusion, precision, recall, support)
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (true, predicted), 1)
    right = np.diag(confusion).astype(np.float64)
    predicted_as, support = confusion.sum(axis=0), confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted_as > 0, right / predicted_as, 0.0)
        recall = np.where(support > 0, right / support, 0.0)
    return Classification(float(right.sum() / len(true)), confusion, precision, recall, support)


def regression(true: np.ndarray, predicted: np.ndarray, use_sklearn: bool = True) -> Regression:
    """RMSE, MAE and R² of ``predicted`` values against ``true`` ones."""
    true, predicted = np.asarray(true, np.float64), np.asarray(predicted, np.float64)
    metrics = _sklearn_metrics() if use_sklearn and len(true) > 1 else None
    if metrics is not None:  # (of one sample, scikit-learn's R² is NaN, with a warning)
        mse = metrics.mean_squared_error(true, predicted)
        return Regression(float(np.sqrt(mse)), float(metrics.mean_absolute_error(true, predicted)),
                          float(metrics.r2_score(true, predicted)))
    error = predicted - true
    residual = float(np.sum(error ** 2))
    total = float(np.sum((true - true.mean()) ** 2))
    # constant targets: 1 for exact predictions, else 0 (scikit-learn's force_finite)
    r2 = 1.0 - residual / total if total > 0 else float(residual == 0)
    return Regression(float(np.sqrt(np.mean(error ** 2))), float(np.mean(np.abs(error))), r2)


def confusion_table(result: Classification, names: list[str]) -> str:
    """The confusion matrix, then each class's precision, recall and support, as text."""
    width = max(8, *(len(name) for name in names))
    cells = max(6, len(str(int(result.confusion.max(initial=0)))) + 1,
                min(12, max(len(name) for name in names)) + 1)
    lines = ["confusion matrix (rows: true class, columns: predicted class):",
             " " * width + "".join(f"{name[:cells - 1]:>{cells}}" for name in names)]
    for name, row in zip(names, result.confusion, strict=True):
        lines.append(f"{name:<{width}}" + "".join(f"{int(n):>{cells}}" for n in row))
    lines.append(f"{'class':<{width}}  precision  recall  support")
    for name, p, r, n in zip(names, result.precision, result.recall, result.support,
                             strict=True):
        lines.append(f"{name:<{width}}  {p:>9.4f}  {r:>6.4f}  {int(n):>7}")
    return "\n".join(lines)
