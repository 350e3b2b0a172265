"""scikit-learn estimators that train nnfs networks: :class:`NnfsClassifier` and
:class:`NnfsRegressor`.

They follow scikit-learn's estimator rules, so they work in ``Pipeline``, ``GridSearchCV``,
``cross_val_score`` and ``clone``, and pass scikit-learn's own estimator checks
(``tests/test_sklearn.py`` lists the few that cannot pass, each with its reason)::

    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from nnfs.sklearn import NnfsClassifier

    model = make_pipeline(StandardScaler(), NnfsClassifier(hidden_layer_sizes=(64,)))
    search = GridSearchCV(model, {"nnfsclassifier__eta": [0.05, 0.1]}, cv=3)
    search.fit(X, y)          # any labels: strings, 1..10, booleans

Hyper-parameters are stored by ``__init__`` as given and checked by ``fit``. Training is
``nnfs.fit`` (mini-batch SGD, momentum or Adam, nothing allocated per batch) on the backend
and dtype given, so a grid search can run on OpenCL or CUDA (``backend="cuda"``). The module
needs scikit-learn (``pip install "nnfs-core[sklearn]"``); ``import nnfs`` does not import it.

**Pickles.** A fitted estimator pickles through a host copy of its weights (no device object
is in the pickle); unpickled, it rebuilds its network on its ``backend`` and ``dtype`` when it
is first used. Like every pickle, that file can run code when it is loaded: unpickle only
files you trust. To share a model, save ``estimator.network_`` with :func:`nnfs.save` (a file
that loading checks and never runs) or export it with :func:`nnfs.export_onnx`.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import MissingDependency, NnfsTypeError, NnfsValueError

try:
    import sklearn  # noqa: F401
except ImportError:
    raise MissingDependency("nnfs.sklearn needs scikit-learn, which is not installed: "
                            "pip install 'nnfs-core[sklearn]'") from None

from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

import nnfs

from . import optimizers
from .activations import ACTIVATIONS
from .network import fully_connected

#: The optimizers the estimators can train with, by name (``nnfs train --optimizer``'s).
OPTIMIZERS = tuple(optimizers.RATES)


class _EarlyStop(Exception):
    """Raised from fit's ``on_epoch`` when the validation cost has stopped improving."""


class _NnfsEstimator(BaseEstimator):
    """What the classifier and the regressor share: hyper-parameters, training, pickling."""

    #: The output layer's activation and the cost, per kind of estimator.
    _output_activation = "linear"
    _cost = "quadratic"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, epochs=50,
                 batch_size=32, eta=None, optimizer="sgd", momentum=None, weight_decay=None,
                 shuffle=True, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4, random_state=None,
                 backend=None, dtype="float32", verbose=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.eta = eta
        self.optimizer = optimizer
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.shuffle = shuffle
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.backend = backend
        self.dtype = dtype
        self.verbose = verbose

    # --- checking the hyper-parameters (in fit, as scikit-learn asks) ---------------------------

    def _hidden_layers(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = [sizes]
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (Sequence, np.ndarray)):
            raise NnfsTypeError(f"{self._name}: hidden_layer_sizes must be a sequence of layer "
                                f"widths such as (100,) or (64, 32), got {sizes!r}")
        widths = list(sizes)
        for width in widths:
            if (isinstance(width, bool) or not isinstance(width, numbers.Integral)
                    or width < 1):
                raise NnfsValueError(f"{self._name}: hidden_layer_sizes must hold positive "
                                     f"integers, got {self.hidden_layer_sizes!r}")
        return [int(width) for width in widths]

    def _check_parameters(self) -> None:
        name = self._name
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            raise NnfsValueError(f"{name}: activation must be one of {', '.join(ACTIVATIONS)}, "
                                 f"got {self.activation!r}")
        if not isinstance(self.optimizer, str) or self.optimizer not in OPTIMIZERS:
            raise NnfsValueError(f"{name}: optimizer must be one of {', '.join(OPTIMIZERS)}, "
                                 f"got {self.optimizer!r}")
        for what in ("epochs", "batch_size", "n_iter_no_change"):
            value = getattr(self, what)
            if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
                    or value < 1):
                raise NnfsValueError(f"{name}: {what} must be a positive integer, got {value!r}")
        fraction = self.validation_fraction
        if (isinstance(fraction, bool) or not isinstance(fraction, numbers.Real)
                or not 0 < float(fraction) < 1):
            raise NnfsValueError(f"{name}: validation_fraction must be a number between 0 and "
                                 f"1 (exclusive), got {fraction!r}")
        if (isinstance(self.tol, bool) or not isinstance(self.tol, numbers.Real)
                or not float(self.tol) >= 0):
            raise NnfsValueError(f"{name}: tol must be a number of 0 or more, got {self.tol!r}")
        if self.eta is not None and (isinstance(self.eta, bool)
                                     or not isinstance(self.eta, numbers.Real)
                                     or not np.isfinite(float(self.eta)) or self.eta <= 0):
            raise NnfsValueError(f"{name}: eta must be a positive number (the learning rate) "
                                 f"or None (the optimizer's own), got {self.eta!r}")
        self._make_optimizer()

    def _make_optimizer(self) -> optimizers.Optimizer:
        """The optimizer the hyper-parameters name (its settings checked by nnfs)."""
        try:
            return optimizers.named(self.optimizer,
                                    None if self.eta is None else float(self.eta),
                                    momentum=self.momentum, weight_decay=self.weight_decay)
        except (NnfsValueError, NnfsTypeError) as error:
            raise type(error)(f"{self._name}: {error}") from None

    @property
    def _name(self) -> str:
        return type(self).__name__

    # --- the network --------------------------------------------------------------------------

    def __sklearn_is_fitted__(self) -> bool:
        return getattr(self, "_architecture", None) is not None

    @property
    def network_(self) -> nnfs.InferenceNetwork:
        """The trained nnfs network (on the estimator's backend): save it with ``nnfs.save``,
        export it with ``nnfs.export_onnx``. It takes the features as ``fit`` had them (a
        ``Pipeline``'s scaler is not part of it)."""
        check_is_fitted(self)
        network = self.__dict__.get("_network")
        if network is None:  # unpickled: rebuilt from the host weights
            in_dim, layers = self._architecture
            factory = nnfs.backend(self.backend, self.dtype)
            network = nnfs.inference_network(
                factory, in_dim, [fully_connected(units, kind) for units, kind in layers])
            nnfs.transfer(self.__dict__.pop("_host_parameters"), network.parameters)
            self._network = network
        return network

    @property
    def coefs_(self) -> list[np.ndarray]:
        """The weights of each layer as in scikit-learn's MLP: inputs × outputs, float64."""
        return [nnfs.transfer(layer.weights).T.astype(np.float64)
                for layer in self.network_.layers]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """The bias of each layer, float64."""
        return [nnfs.transfer(layer.bias).astype(np.float64) for layer in self.network_.layers]

    def _build(self, in_dim: int, outputs: int, seed: int) -> None:
        """A new network of the hyper-parameters' layers for ``in_dim`` inputs, in place of
        the old one (released once the new one is built)."""
        layers = [fully_connected(width, self.activation) for width in self._hidden_layers()]
        layers.append(fully_connected(outputs, self._output_activation))
        factory = nnfs.backend(self.backend, self.dtype)
        network = nnfs.inference_network(factory, in_dim, layers, seed=seed)
        self._release()
        self._network = network
        self._architecture: tuple[int, tuple[tuple[int, str], ...]] = (
            in_dim, tuple((layer.units, str(layer.activation.kind)) for layer in layers))
        self.n_iter_ = 0
        self.loss_curve_: list[float] = []

    def _release(self) -> None:
        network = self.__dict__.pop("_network", None)
        if network is not None:
            network.release()
        self.__dict__.pop("_host_parameters", None)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        network = state.pop("_network", None)
        if network is not None:  # a released network raises nnfs.ReleasedError here
            state["_host_parameters"] = nnfs.transfer(network.parameters)
        return state

    # --- training -----------------------------------------------------------------------------

    def _validate_X(self, X, reset: bool) -> np.ndarray:
        return validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])

    def _train(self, X, targets, weights, *, epochs: int, rng, early_stopping: bool,
               stratify=None) -> None:
        """``epochs`` of nnfs.fit on the network; with early stopping, on a held-out split
        whose cost is measured after every epoch, stopping when it has not improved by ``tol``
        for ``n_iter_no_change`` epochs, and putting back the weights of the best epoch."""
        network = self.network_
        arguments: dict[str, Any] = {"epochs": epochs, "optimizer": self._make_optimizer(),
                                     "cost": self._cost, "shuffle": bool(self.shuffle),
                                     "seed": int(rng.randint(np.iinfo(np.int32).max)),
                                     "quiet": not self.verbose}
        if not early_stopping:
            fitted = nnfs.fit(network, X, targets, batch_size=min(self.batch_size, len(X)),
                              sample_weight=weights, **arguments)
            self._record(fitted)
            return
        split = train_test_split(*([X, targets] + ([] if weights is None else [weights])),
                                 test_size=self.validation_fraction, stratify=stratify,
                                 random_state=int(rng.randint(np.iinfo(np.int32).max)))
        X_train, X_valid, t_train, t_valid = split[:4]
        factory = network.factory
        with factory.vector(network.parameter_count) as best:  # the best weights so far
            history: nnfs.History | None = None
            stop = {"cost": np.inf, "epoch": 0}

            def on_epoch(epoch, seen):
                nonlocal history
                history = seen
                cost = seen.validation_cost[-1]
                if cost < stop["cost"] - self.tol:
                    stop.update(cost=cost, epoch=epoch)
                    factory.copy(network.parameters, best)
                elif epoch - stop["epoch"] >= self.n_iter_no_change:
                    raise _EarlyStop

            with contextlib.suppress(_EarlyStop):
                nnfs.fit(network, X_train, t_train, batch_size=min(self.batch_size, len(X_train)),
                         sample_weight=None if weights is None else split[4],
                         validation=(X_valid, t_valid), on_epoch=on_epoch, **arguments)
            assert history is not None  # fit ran at least one epoch
            if stop["epoch"] and stop["epoch"] != history.epochs:
                factory.copy(best, network.parameters)
        self.validation_loss_curve_ = [float(cost) for cost in history.validation_cost]
        self.best_validation_loss_ = float(stop["cost"])
        self.best_epoch_ = self.n_iter_ + stop["epoch"]
        self._record(history)

    def _record(self, history) -> None:
        self.loss_curve_ = [*self.loss_curve_, *map(float, history.cost)]
        self.n_iter_ += history.epochs
        self.loss_ = self.loss_curve_[-1]

    def _predict_outputs(self, X) -> np.ndarray:
        check_is_fitted(self)
        network = self.network_
        X = self._validate_X(X, reset=False)
        return nnfs.predict(network, X).astype(np.float64)


class NnfsClassifier(ClassifierMixin, _NnfsEstimator):
    """A classifier: an nnfs network with a softmax output (one unit per class), trained on
    the cross-entropy by mini-batch training (``nnfs.fit``).

    Args:
        hidden_layer_sizes: the widths of the hidden layers, such as ``(100,)`` or ``(64, 32)``;
            ``()`` for none (multinomial logistic regression).
        activation: of the hidden layers: ``"relu"``, ``"tanh"``, ``"sigmoid"``, ``"linear"``
            (or ``"softmax"``).
        epochs: passes over the training data (the most, with early stopping).
        batch_size: samples per update (at most the number of training samples).
        eta: the learning rate (``None``: the optimizer's own, 0.05 for ``"sgd"``,
            ``"momentum"`` and ``"nesterov"``, 0.003 for ``"adam"`` and ``"adamw"``).
        optimizer: ``"sgd"`` (plain), ``"momentum"``, ``"nesterov"``, ``"adam"`` or
            ``"adamw"``, with ``torch.optim``'s update rules (see :mod:`nnfs.optimizers`).
            Each ``fit`` or ``partial_fit`` call starts the optimizer's state (velocity,
            moments) afresh.
        momentum: for ``"momentum"`` and ``"nesterov"`` (``None``: 0.9).
        weight_decay: L2 decay of the weights, not the biases (``None``: 0, and 0.01 for
            ``"adamw"``, where it is decoupled).
        shuffle: visit the samples in a new order every epoch.
        early_stopping: hold out ``validation_fraction`` of the training data (stratified) and
            stop when its cost has not improved by ``tol`` for ``n_iter_no_change`` epochs; the
            network then holds the weights of its best epoch.
        class_weight: ``None``, ``"balanced"`` or ``{label: weight}``: multiplies each sample's
            weight by its class's.
        random_state: an int (or ``numpy.random.RandomState``) for reproducible weights,
            shuffling and validation split.
        backend, dtype: where the network trains (``None``: ``NNFS_BACKEND``, else cpu) and in
            which precision (``"float32"`` or ``"float64"``).
        verbose: show nnfs's progress bar.

    Attributes (after ``fit``): ``classes_``, ``n_features_in_``, ``feature_names_in_`` (for
    data frames), ``network_`` (the nnfs network), ``coefs_``, ``intercepts_``, ``n_iter_``
    (epochs trained), ``loss_curve_`` (the unweighted training cost of each epoch), and with
    early stopping ``best_validation_loss_`` and ``best_epoch_``.

    ``sample_weight`` multiplies each sample's loss exactly (see ``nnfs.fit``). A pickle of a
    fitted estimator is for trusted files only (see the module's docstring).
    """

    _output_activation = "softmax"
    _cost = "cross_entropy"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, epochs=50,
                 batch_size=32, eta=None, optimizer="sgd", momentum=None, weight_decay=None,
                 shuffle=True, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4, class_weight=None,
                 random_state=None, backend=None, dtype="float32", verbose=False):
        super().__init__(hidden_layer_sizes, activation, epochs=epochs, batch_size=batch_size,
                         eta=eta, optimizer=optimizer, momentum=momentum,
                         weight_decay=weight_decay, shuffle=shuffle,
                         early_stopping=early_stopping,
                         validation_fraction=validation_fraction,
                         n_iter_no_change=n_iter_no_change, tol=tol, random_state=random_state,
                         backend=backend, dtype=dtype, verbose=verbose)
        self.class_weight = class_weight

    def fit(self, X, y, sample_weight=None):
        """Train a new network on ``X`` (samples × features) and the labels ``y``."""
        self._check_parameters()
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        classes = unique_labels(y)
        if len(classes) < 2:
            raise NnfsValueError(f"{self._name}: y holds 1 class ({classes.tolist()[0]!r}); a "
                                 "classifier needs at least 2 classes to tell apart")
        self.classes_ = classes
        labels = self._encode(y)
        weights = self._weights(labels, sample_weight, len(X), partial=False)
        rng = check_random_state(self.random_state)
        self._build(X.shape[1], len(classes), int(rng.randint(np.iinfo(np.int32).max)))
        self._rng = rng
        self._train(X, labels, weights, epochs=self.epochs, rng=rng,
                    early_stopping=self.early_stopping, stratify=labels)
        return self

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch on ``X`` and ``y``, continuing from the network trained so far. The first
        call needs ``classes``, every label there will be; early stopping does not apply."""
        first = not self.__sklearn_is_fitted__()
        if first:
            if classes is None:
                raise NnfsValueError(f"{self._name}: the first call of partial_fit needs "
                                     "classes=, every label the data will have")
            self._check_parameters()
            X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
            classes = unique_labels(classes)
            if len(classes) < 2:
                raise NnfsValueError(f"{self._name}: classes holds 1 class; a classifier needs "
                                     "at least 2 classes to tell apart")
        else:
            if classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
                raise NnfsValueError(f"{self._name}: classes={list(classes)!r} differs from "
                                     f"the classes of the first call, {list(self.classes_)!r}")
            X, y = validate_data(self, X, y, reset=False, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        if first:
            self.classes_ = classes
        labels = self._encode(y)
        weights = self._weights(labels, sample_weight, len(X), partial=True)
        if first:
            rng = check_random_state(self.random_state)
            self._build(X.shape[1], len(classes), int(rng.randint(np.iinfo(np.int32).max)))
            self._rng = rng
        self._train(X, labels, weights, epochs=1, rng=self._rng, early_stopping=False)
        return self

    def _encode(self, y) -> np.ndarray:
        """The labels as indices into ``classes_`` (through scikit-learn's LabelEncoder)."""
        encoder = LabelEncoder().fit(self.classes_)
        try:
            return encoder.transform(y)
        except ValueError:
            unknown = sorted(set(np.unique(y).tolist()) - set(self.classes_.tolist()), key=str)
            raise NnfsValueError(f"{self._name}: y holds the label(s) {unknown!r}, which are "
                                 f"not among the classes {list(self.classes_)!r}") from None

    def _weights(self, labels, sample_weight, n: int, partial: bool):
        """Each sample's weight: sample_weight times its class's weight; None for none."""
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if weights is not None and weights.shape != (n,):
            raise NnfsValueError(f"{self._name}: sample_weight must be one weight per sample, "
                                 f"shape ({n},), got shape {weights.shape}")
        if self.class_weight is not None:
            if partial and isinstance(self.class_weight, str):
                raise NnfsValueError(f"{self._name}: class_weight={self.class_weight!r} needs "
                                     "the whole data set, which partial_fit never sees; give "
                                     "a dict {label: weight}")
            per_class = compute_class_weight(self.class_weight, classes=self.classes_,
                                             y=self.classes_[labels])
            by_class = per_class[labels]
            weights = by_class if weights is None else weights * by_class
        return weights

    def predict_proba(self, X) -> np.ndarray:
        """The probability of each class (columns in the order of ``classes_``)."""
        return self._predict_outputs(X)

    def predict_log_proba(self, X) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each sample, as a label of ``classes_``."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class NnfsRegressor(RegressorMixin, _NnfsEstimator):
    """A regressor: an nnfs network with a linear output (one unit per target), trained on
    the quadratic cost by mini-batch training (``nnfs.fit``). ``y`` may have several columns.

    The hyper-parameters and attributes are those of :class:`NnfsClassifier`, without the
    classes and ``class_weight``. The targets are used as they are: scale them (for example
    with ``sklearn.compose.TransformedTargetRegressor``) when they are far from 1.
    """

    _output_activation = "linear"
    _cost = "quadratic"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _targets(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def fit(self, X, y, sample_weight=None):
        """Train a new network on ``X`` (samples × features) and the targets ``y``."""
        self._check_parameters()
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], multi_output=True,
                             y_numeric=True)
        targets = self._targets(y)
        self._one_output = np.ndim(y) == 1
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        rng = check_random_state(self.random_state)
        self._build(X.shape[1], targets.shape[1], int(rng.randint(np.iinfo(np.int32).max)))
        self._rng = rng
        self._train(X, targets, weights, epochs=self.epochs, rng=rng,
                    early_stopping=self.early_stopping)
        return self

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch on ``X`` and ``y``, continuing from the network trained so far."""
        first = not self.__sklearn_is_fitted__()
        if first:
            self._check_parameters()
        X, y = validate_data(self, X, y, reset=first, dtype=[np.float64, np.float32],
                             multi_output=True, y_numeric=True)
        targets = self._targets(y)
        if not first and targets.shape[1] != self._architecture[1][-1][0]:
            raise NnfsValueError(f"{self._name}: y has {targets.shape[1]} targets per sample "
                                 f"but the first call of partial_fit had "
                                 f"{self._architecture[1][-1][0]}")
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if first:
            rng = check_random_state(self.random_state)
            self._one_output = np.ndim(y) == 1
            self._build(X.shape[1], targets.shape[1], int(rng.randint(np.iinfo(np.int32).max)))
            self._rng = rng
        self._train(X, targets, weights, epochs=1, rng=self._rng, early_stopping=False)
        return self

    def predict(self, X) -> np.ndarray:
        """The network's outputs: one value per sample, or one row per sample when ``y`` had
        several columns."""
        outputs = self._predict_outputs(X)
        return outputs[:, 0] if self._one_output else outputs
