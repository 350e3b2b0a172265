"""The cost history as a PNG (the article's suggested homework). Needs matplotlib
(``pip install 'nnfs-core[plot]'``)."""

from __future__ import annotations

import io
from pathlib import Path

from .errors import NnfsError
from .fit import History
from .io import write_whole


def require_matplotlib() -> None:
    """Raise a clear error now, before training, if matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise NnfsError("plotting needs matplotlib, which is not installed: "
                        "pip install 'nnfs-core[plot]'") from None


def plot_history(history: History | list[float], path: str | Path, title: str = "") -> Path:
    """Draw the cost per epoch (log scale), and validation accuracy when there is one, into a
    PNG at ``path``, written whole."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    costs = history.cost if isinstance(history, History) else list(history)
    figure = Figure(figsize=(7, 4), dpi=100)
    axes = figure.add_subplot()
    epochs = range(1, len(costs) + 1)
    axes.plot(epochs, costs, color="tab:blue", label="training cost")
    if all(c > 0 for c in costs):
        axes.set_yscale("log")
    axes.set_xlabel("epoch")
    axes.set_ylabel("cost", color="tab:blue")
    if isinstance(history, History) and history.validation_accuracy:
        other = axes.twinx()
        other.plot(epochs, history.validation_accuracy, color="tab:orange", label="test accuracy")
        other.set_ylabel("test accuracy", color="tab:orange")
    axes.set_title(title or "nnfs: cost per epoch")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    path = Path(path)
    write_whole(path, lambda file: file.write(buffer.getvalue()), "plot")
    return path
