"""nnfs.sklearn: NnfsClassifier and NnfsRegressor as scikit-learn estimators (issue #19).

scikit-learn's own estimator suite runs on four instances (each estimator in float32 with its
defaults, and in float64), small enough for CI (20 epochs of 16 hidden units); every check
expected to fail is listed below with its reason, and xfail_strict makes one that starts to
pass fail the run, so the list cannot go stale.
"""

from __future__ import annotations

import io
import pickle
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="nnfs.sklearn needs scikit-learn (nnfs-core[sklearn])")

from sklearn.base import clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_digits, make_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import nnfs
from conftest import ROOT
from nnfs.sklearn import NnfsClassifier, NnfsRegressor

#: Small enough that the whole suite of checks takes seconds.
SMALL = {"hidden_layer_sizes": (16,), "epochs": 20, "random_state": 0}

#: Checks that compare predictions to rtol 1e-7: in float32, matrix products of other widths
#: (a subset of the rows; the repeated samples summed in another order) round differently,
#: by about 3e-7 or not at all, depending on the BLAS library and the processor. The float64
#: instances must pass them exactly; in float32 they are skipped with this reason (a strict
#: expected failure would fail on machines where the rounding happens to agree), and
#: test_float32_predictions_of_a_subset_agree_to_float32_rounding holds float32 to 1e-6.
FLOAT32_ROUNDING = {
    "check_methods_subset_invariance": "float32 products of other widths round differently",
    "check_sample_weight_equivalence_on_dense_data":
        "float32 sums of the repeated samples in another order round differently",
}
_DIVERGES = (
    "plain SGD at the default eta=0.05 diverges on the check's unscaled make_regression "
    "targets (values in the hundreds): fit raises nnfs.TrainingDiverged, a FloatingPointError, "
    "naming the epoch; scale the targets (TransformedTargetRegressor), or train with Adam: "
    "the float64 instance, with eta=0.001, and the Adam instance pass it")
_SLOW_ETA = (
    "this instance's eta=0.001 (chosen so that the unscaled targets of the other checks do not "
    "diverge) is too small to reach R² > 0.5 on the standardised targets of this check in 20 "
    "epochs (it reaches −0.34); the default instance passes it")


def expected_failures(estimator) -> dict[str, str]:
    """The checks each instance is expected to fail, with the reason."""
    if not isinstance(estimator, NnfsRegressor):
        return {}
    if estimator.optimizer == "adam":
        return {}
    if estimator.eta is None:  # plain SGD's own rate, 0.05
        return {"check_regressor_data_not_an_array": _DIVERGES,
                "check_regressor_multioutput": _DIVERGES}
    return {"check_regressors_train": _SLOW_ETA}


def _check_name(check) -> str:
    return getattr(check, "func", check).__name__


@parametrize_with_checks([
    NnfsClassifier(**SMALL),
    NnfsClassifier(**SMALL, dtype="float64"),
    NnfsRegressor(**SMALL),
    NnfsRegressor(**SMALL, eta=0.001, dtype="float64"),
    NnfsRegressor(**SMALL, optimizer="adam"),
], expected_failed_checks=expected_failures)
def test_scikit_learn_estimator_checks(estimator, check):
    name = _check_name(check)
    if estimator.dtype == "float32" and name in FLOAT32_ROUNDING:
        pytest.skip(f"{name} in float32: {FLOAT32_ROUNDING[name]} (to about 3e-7, above the "
                    "check's 1e-7); the float64 instance passes it")
    check(estimator)


def test_float32_predictions_of_a_subset_agree_to_float32_rounding():
    X, y = blobs(200)
    for model in (NnfsClassifier(**SMALL).fit(X, y), NnfsRegressor(**SMALL).fit(X, y / 2)):
        whole = model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)
        for rows in (slice(0, 1), slice(3, 50), slice(100, 200)):
            part = (model.predict_proba(X[rows]) if hasattr(model, "predict_proba")
                    else model.predict(X[rows]))
            np.testing.assert_allclose(part, whole[rows], rtol=1e-6, atol=1e-6)


# --- data ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16, y, test_size=0.25, random_state=0)


def blobs(n=300, classes=3, seed=0):
    return make_classification(n_samples=n, n_features=6, n_informative=4, n_redundant=0,
                               n_classes=classes, n_clusters_per_class=1, class_sep=2.0,
                               random_state=seed)


# --- fitting, labels, scores ---------------------------------------------------------------------

def test_digits_as_scikit_learn_users_have_them(digits):
    X_train, X_test, y_train, y_test = digits
    model = NnfsClassifier(hidden_layer_sizes=(64,), random_state=0).fit(X_train, y_train)
    assert model.score(X_test, y_test) > 0.95
    assert model.n_features_in_ == 64 and list(model.classes_) == list(range(10))
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(X_test), 10) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert model.n_iter_ == 50 and len(model.loss_curve_) == 50
    assert model.loss_curve_[-1] < model.loss_curve_[0] / 5
    assert [w.shape for w in model.coefs_] == [(64, 64), (64, 10)]
    assert [b.shape for b in model.intercepts_] == [(64,), (10,)]


@pytest.mark.parametrize("labels", [
    np.array(["cat", "dog", "emu"]),
    np.array([1, 5, 10]),
    np.array([-1.0, 0.0, 2.0]),
], ids=["strings", "one-based integers", "whole floats"])
def test_any_labels_scikit_learn_accepts(labels):
    X, y = blobs()
    model = NnfsClassifier(**SMALL).fit(X, labels[y])
    assert list(model.classes_) == sorted(labels.tolist())
    predicted = model.predict(X)
    assert predicted.dtype == labels.dtype and set(predicted) <= set(labels)
    assert np.mean(predicted == labels[y]) > 0.9


def test_continuous_labels_are_refused_by_scikit_learns_rule():
    X, y = blobs()
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        NnfsClassifier(**SMALL).fit(X, y + 0.5)


def test_boolean_labels_are_two_classes():
    X, y = blobs(classes=2)
    model = NnfsClassifier(**SMALL).fit(X, y == 1)
    assert model.classes_.tolist() == [False, True]
    assert model.predict(X).dtype == bool and model.predict_proba(X).shape == (len(X), 2)
    assert model.score(X, y == 1) > 0.9


def test_one_class_is_refused_naming_it():
    X, _ = blobs()
    with pytest.raises(nnfs.NnfsValueError, match="y holds 1 class \\('a'\\)"):
        NnfsClassifier(**SMALL).fit(X, np.full(len(X), "a"))


def test_feature_names_from_a_data_frame():
    pandas = pytest.importorskip("pandas", reason="data frames need pandas (in the test extra)")
    X, y = blobs()
    frame = pandas.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    model = NnfsClassifier(**SMALL).fit(frame, y)
    assert model.feature_names_in_.tolist() == [f"f{i}" for i in range(6)]
    renamed = frame.rename(columns={"f0": "other"})
    with pytest.raises(ValueError, match="feature names"):
        model.predict(renamed)


def test_regressor_one_and_several_targets():
    X, y = make_regression(n_samples=300, n_features=5, n_targets=2, noise=1.0, random_state=0)
    y = y / y.std(axis=0)
    single = NnfsRegressor(hidden_layer_sizes=(32,), epochs=60, random_state=0).fit(X, y[:, 0])
    assert single.predict(X).shape == (300,) and single.predict(X).dtype == np.float64
    assert single.score(X, y[:, 0]) > 0.95
    several = NnfsRegressor(hidden_layer_sizes=(32,), epochs=60, random_state=0).fit(X, y)
    assert several.predict(X).shape == (300, 2) and several.score(X, y) > 0.95


def test_unscaled_targets_through_transformed_target_regressor():
    """What the README advises for targets far from 1: the same network learns them scaled."""
    X, y = make_regression(n_samples=300, n_features=5, noise=5.0, random_state=0)
    raw = NnfsRegressor(hidden_layer_sizes=(32,), epochs=40, random_state=0)
    with pytest.raises(nnfs.TrainingDiverged):
        raw.fit(X, y * 10)
    scaled = TransformedTargetRegressor(regressor=clone(raw), transformer=StandardScaler())
    assert scaled.fit(X, y * 10).score(X, y * 10) > 0.95


def test_unfitted_estimators_say_so():
    X, _ = blobs()
    for model in (NnfsClassifier(), NnfsRegressor()):
        with pytest.raises(NotFittedError):
            model.predict(X)
        with pytest.raises(NotFittedError):
            model.network_  # noqa: B018


@pytest.mark.parametrize("parameters, error, text", [
    ({"hidden_layer_sizes": (16, 0)}, nnfs.NnfsValueError, "hidden_layer_sizes must hold positive"),
    ({"hidden_layer_sizes": "16"}, nnfs.NnfsTypeError, "hidden_layer_sizes must be a sequence"),
    ({"activation": "swish"}, nnfs.NnfsValueError, "activation must be one of linear"),
    ({"activation": ["relu"]}, nnfs.NnfsValueError, "activation must be one of linear"),
    ({"optimizer": "rmsprop"}, nnfs.NnfsValueError, "optimizer must be one of sgd, momentum"),
    ({"optimizer": "sgd", "momentum": 0.9}, nnfs.NnfsValueError, "momentum is for the"),
    ({"optimizer": "momentum", "momentum": 1.0}, nnfs.NnfsValueError, "momentum"),
    ({"optimizer": "adam", "weight_decay": -1.0}, nnfs.NnfsValueError, "weight_decay"),
    ({"epochs": 0}, nnfs.NnfsValueError, "epochs must be a positive integer"),
    ({"batch_size": 2.5}, nnfs.NnfsValueError, "batch_size must be a positive integer"),
    ({"eta": -0.1}, nnfs.NnfsValueError, "eta must be a positive number"),
    ({"eta": float("nan")}, nnfs.NnfsValueError, "eta must be a positive number"),
    ({"validation_fraction": 1.0}, nnfs.NnfsValueError, "validation_fraction must be"),
    ({"n_iter_no_change": 0}, nnfs.NnfsValueError, "n_iter_no_change must be"),
    ({"tol": -1}, nnfs.NnfsValueError, "tol must be a number of 0 or more"),
    ({"dtype": "float16"}, nnfs.NnfsValueError, "float16"),
    ({"backend": "nonesuch"}, nnfs.BackendNotFound, "nonesuch"),
])
def test_bad_hyper_parameters_are_refused_by_fit_not_init(parameters, error, text):
    X, y = blobs()
    model = NnfsClassifier(**parameters)  # stored as given
    assert all(model.get_params()[key] is value for key, value in parameters.items())
    with pytest.raises(error, match=text):
        model.fit(X, y)
    assert not model.__sklearn_is_fitted__()


def trained_by_hand(X, y, **arguments) -> np.ndarray:
    """The parameters of SMALL's float64 classifier (6 features, 3 classes, random_state 0)
    trained by nnfs.fit with ``arguments``, seeded as the estimator seeds it."""
    rng = np.random.RandomState(0)
    seed, fit_seed = int(rng.randint(2**31 - 1)), int(rng.randint(2**31 - 1))
    factory = nnfs.backend(None, "float64")
    with nnfs.inference_network(factory, 6, [nnfs.fully_connected(16, "relu"),
                                             nnfs.fully_connected(3, "softmax")],
                                seed=seed) as network:
        nnfs.fit(network, X, y, epochs=20, batch_size=32, seed=fit_seed, quiet=True,
                 **arguments)
        return nnfs.transfer(network.parameters)


@pytest.mark.parametrize("name, expected", [
    ("sgd", nnfs.optimizers.SGD(0.05)),
    ("momentum", nnfs.optimizers.SGD(0.05, momentum=0.9)),
    ("nesterov", nnfs.optimizers.SGD(0.05, momentum=0.9, nesterov=True)),
    ("adam", nnfs.optimizers.Adam(3e-3)),
    ("adamw", nnfs.optimizers.AdamW(3e-3, weight_decay=0.01)),
])
def test_each_optimizer_trains_as_nnfs_fit_does_with_it(name, expected):
    """optimizer= names nnfs.optimizers' rules, at each one's own rate: the estimator's
    weights are those of nnfs.fit with that optimizer, bit for bit."""
    X, y = blobs(60)
    model = NnfsClassifier(**SMALL, optimizer=name, dtype="float64").fit(X, y)
    np.testing.assert_array_equal(trained_by_hand(X, y, optimizer=expected),
                                  nnfs.transfer(model.network_.parameters))
    assert model.score(X, y) > 0.9


def test_adam_trains_the_digits_well_in_ten_epochs():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    adam = make_pipeline(StandardScaler(), NnfsClassifier(
        (64,), optimizer="adam", epochs=10, random_state=0)).fit(X_train, y_train)
    assert adam.score(X_test, y_test) > 0.95


# --- weights -------------------------------------------------------------------------------------

def test_sample_weight_is_nnfs_fits_exact_weighting():
    """The estimator's weights reach nnfs.fit as they are: the same network and seeds trained
    by hand give the same weights, bit for bit; and they change the result."""
    X, y = blobs(60)
    w = np.random.default_rng(0).uniform(0, 3, 60)
    model = NnfsClassifier(**SMALL, dtype="float64").fit(X, y, sample_weight=w)
    np.testing.assert_array_equal(trained_by_hand(X, y, eta=0.05, sample_weight=w),
                                  nnfs.transfer(model.network_.parameters))
    unweighted = NnfsClassifier(**SMALL, dtype="float64").fit(X, y)
    assert not np.array_equal(unweighted.predict_proba(X), model.predict_proba(X))


def test_class_weight_is_sample_weight_by_class():
    X, y = blobs(120)
    by_class = NnfsClassifier(**SMALL, class_weight={0: 1.0, 1: 3.0, 2: 0.5}).fit(X, y)
    by_sample = NnfsClassifier(**SMALL).fit(X, y, sample_weight=np.array([1.0, 3.0, 0.5])[y])
    np.testing.assert_array_equal(by_class.predict_proba(X), by_sample.predict_proba(X))
    balanced = NnfsClassifier(**SMALL, class_weight="balanced").fit(X[:100], y[:100])
    counts = np.bincount(y[:100])
    by_count = NnfsClassifier(**SMALL).fit(X[:100], y[:100],
                                           sample_weight=(100 / (3 * counts))[y[:100]])
    np.testing.assert_allclose(balanced.predict_proba(X), by_count.predict_proba(X), rtol=1e-5)


def test_class_weight_makes_a_rare_class_found():
    X, y = make_classification(n_samples=400, n_features=4, n_informative=2, n_redundant=0,
                               weights=[0.95, 0.05], class_sep=0.6, random_state=3)
    plain = NnfsClassifier(**SMALL).fit(X, y)
    balanced = NnfsClassifier(**SMALL, class_weight="balanced").fit(X, y)
    recall = [np.mean(model.predict(X)[y == 1] == 1) for model in (plain, balanced)]
    assert recall[1] > recall[0] + 0.2, recall


def test_weights_of_the_wrong_shape_or_sign():
    X, y = blobs(60)
    with pytest.raises(ValueError, match="one weight per sample"):
        NnfsClassifier(**SMALL).fit(X, y, sample_weight=np.ones(59))
    with pytest.raises(ValueError, match="negative weight"):
        NnfsRegressor(**SMALL).fit(X, y, sample_weight=-np.ones(60))
    with pytest.raises(ValueError, match="classes"):
        NnfsClassifier(**SMALL, class_weight={7: 2.0}).fit(X, y)


# --- early stopping ------------------------------------------------------------------------------

def test_early_stopping_keeps_the_weights_of_the_best_epoch(digits):
    """Stopped n_iter_no_change epochs after its best, the network holds the weights of its
    best epoch. The run is replayed with nnfs.fit on the same split and seeds (the estimator
    draws the network's seed, fit's and the split's, in that order): the validation costs are
    the same, and the weights are those of the best epoch, not of the last."""
    X_train, _, y_train, _ = digits
    stopped = NnfsClassifier(hidden_layer_sizes=(32,), random_state=0, early_stopping=True,
                             eta=0.2, n_iter_no_change=3, tol=0.0, epochs=300,
                             dtype="float64").fit(X_train, y_train)
    best = stopped.best_epoch_
    assert stopped.n_iter_ == best + 3 < 300
    assert stopped.best_validation_loss_ == min(stopped.validation_loss_curve_)
    assert stopped.validation_loss_curve_[best - 1] == stopped.best_validation_loss_
    rng = np.random.RandomState(0)
    seed, fit_seed, split_seed = (int(rng.randint(2**31 - 1)) for _ in range(3))
    X_fit, X_valid, y_fit, y_valid = train_test_split(X_train, y_train, test_size=0.1,
                                                      stratify=y_train, random_state=split_seed)
    factory = nnfs.backend(None, "float64")
    layers = [nnfs.fully_connected(32, "relu"), nnfs.fully_connected(10, "softmax")]
    weights = {}
    for epochs in (best, stopped.n_iter_):
        with nnfs.inference_network(factory, 64, layers, seed=seed) as network:
            history = nnfs.fit(network, X_fit, y_fit, epochs=epochs, batch_size=32, eta=0.2,
                               seed=fit_seed, validation=(X_valid, y_valid), quiet=True)
            weights[epochs] = nnfs.transfer(network.parameters)
    assert history.validation_cost == stopped.validation_loss_curve_
    kept = nnfs.transfer(stopped.network_.parameters)
    np.testing.assert_array_equal(kept, weights[best])
    assert not np.array_equal(kept, weights[stopped.n_iter_])


def test_early_stopping_of_the_regressor():
    X, y = make_regression(n_samples=300, n_features=5, noise=10.0, random_state=0)
    model = NnfsRegressor(hidden_layer_sizes=(32,), epochs=500, early_stopping=True,
                          random_state=0).fit(X, y / y.std())
    assert model.n_iter_ < 500 and model.score(X, y / y.std()) > 0.9


# --- partial_fit ---------------------------------------------------------------------------------

def test_partial_fit_trains_on_from_where_it_was():
    X, y = blobs(300)
    labels = np.array(["a", "b", "c"])[y]
    model = NnfsClassifier(**SMALL)
    with pytest.raises(nnfs.NnfsValueError, match="needs classes="):
        model.partial_fit(X, labels)
    model.partial_fit(X[:100], labels[:100], classes=["a", "b", "c"])
    first = model.score(X, labels)
    for _ in range(10):
        for start in range(0, 300, 100):
            model.partial_fit(X[start:start + 100], labels[start:start + 100])
    assert model.n_iter_ == 31 and len(model.loss_curve_) == 31
    assert model.score(X, labels) > max(first, 0.9)
    with pytest.raises(nnfs.NnfsValueError, match="not among the classes"):
        model.partial_fit(X[:5], ["a", "b", "z", "a", "b"])
    with pytest.raises(ValueError, match="X has 5 features"):
        model.partial_fit(X[:, :5], labels)
    with pytest.raises(nnfs.NnfsValueError, match="needs the whole data set"):
        NnfsClassifier(class_weight="balanced").partial_fit(X, labels, classes=["a", "b", "c"])


def test_partial_fit_of_the_regressor():
    X, y = make_regression(n_samples=200, n_features=4, noise=1.0, random_state=1)
    model = NnfsRegressor(hidden_layer_sizes=(16,), random_state=0)
    for _ in range(30):
        model.partial_fit(X, y / y.std())
    assert model.n_iter_ == 30 and model.score(X, y / y.std()) > 0.9
    with pytest.raises(nnfs.NnfsValueError, match="2 targets per sample"):
        model.partial_fit(X, np.c_[y, y])


# --- scikit-learn's tools ------------------------------------------------------------------------

def test_pipeline_grid_search_cross_val_score_and_clone(digits):
    X_train, X_test, y_train, y_test = digits
    pipeline = make_pipeline(StandardScaler(), NnfsClassifier(**SMALL))
    search = GridSearchCV(pipeline, {"nnfsclassifier__hidden_layer_sizes": [(8,), (32,)],
                                     "nnfsclassifier__eta": [0.01, 0.1]}, cv=3)
    search.fit(X_train, y_train)
    assert search.best_params_ == {"nnfsclassifier__hidden_layer_sizes": (32,),
                                   "nnfsclassifier__eta": 0.1}
    assert search.score(X_test, y_test) > 0.9
    scores = cross_val_score(NnfsClassifier(**SMALL), X_train, y_train, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.85
    fitted = search.best_estimator_[-1]
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params() and not copy.__sklearn_is_fitted__()


def test_grid_search_in_worker_processes():
    """n_jobs=2: the estimators travel to the workers and back (fitted) as pickles."""
    X, y = blobs(200)
    search = GridSearchCV(NnfsClassifier(**SMALL), {"eta": [0.01, 0.1]}, cv=2, n_jobs=2)
    assert search.fit(X, y).score(X, y) > 0.9


def test_every_backend_trains_the_same_estimator(factory):
    """backend= and dtype= put the training on any backend: the same seeds give the CPU's
    network, to the backend's rounding."""
    X, y = blobs(120)
    settings = {**SMALL, "backend": factory.name, "dtype": factory.dtype}
    model = NnfsClassifier(**settings).fit(X, y)
    assert model.network_.factory is factory
    cpu = NnfsClassifier(**{**settings, "backend": "cpu"}).fit(X, y)
    tolerance = 1e-4 if factory.dtype == "float32" else 1e-9
    np.testing.assert_allclose(model.predict_proba(X), cpu.predict_proba(X), atol=tolerance)


def test_grid_search_over_backends_and_dtypes():
    """Every installed backend with each dtype it declares, as one grid."""
    grid = [{"backend": [info.name], "dtype": list(info.dtypes)}
            for info in nnfs.backends() if info.available]
    X, y = blobs(120)
    search = GridSearchCV(NnfsClassifier(**SMALL), grid, cv=2, error_score="raise").fit(X, y)
    assert len(search.cv_results_["params"]) == sum(len(g["dtype"]) for g in grid) >= 2
    assert np.all(search.cv_results_["mean_test_score"] > 0.8)


# --- pickles -------------------------------------------------------------------------------------

def _modules(data: bytes) -> set[str]:
    """The modules whose objects loading the pickle ``data`` imports."""
    found = set()

    class Recording(pickle.Unpickler):
        def find_class(self, module, name):
            found.add(module)
            return super().find_class(module, name)

    Recording(io.BytesIO(data)).load()
    return found


def test_a_fitted_estimator_pickles_through_host_weights(factory):
    X, y = blobs(100)
    model = NnfsClassifier(**SMALL, backend=factory.name, dtype=factory.dtype).fit(X, y)
    data = pickle.dumps(model)
    modules = _modules(data)
    # of nnfs, only the estimator's class: no network, matrix, factory or backend module
    assert {name for name in modules if name.startswith("nnfs")} == {"nnfs.sklearn"}, modules
    assert all(name == "nnfs.sklearn" or name.split(".")[0] == "numpy" for name in modules), \
        modules  # and numpy's arrays and random state
    copy = pickle.loads(data)
    np.testing.assert_array_equal(copy.predict_proba(X), model.predict_proba(X))
    assert copy.network_ is not model.network_ and copy.network_.factory is factory
    assert copy.n_iter_ == model.n_iter_ and list(copy.classes_) == list(model.classes_)
    again = pickle.loads(pickle.dumps(copy))  # unpickled, used, pickled again
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    copy.partial_fit(X, y)  # and it trains on
    assert copy.n_iter_ == model.n_iter_ + 1


def test_releasing_the_network_of_a_refitted_estimator(cpu):
    X, y = blobs(100)
    model = NnfsClassifier(**SMALL, backend="cpu").fit(X, y)
    first = model.network_
    model.fit(X, y)
    assert first.released and not model.network_.released
    before = model.predict_proba(X)
    with pytest.raises(nnfs.BackendNotFound):  # a refit that fails before its network is built
        model.set_params(backend="nonesuch").fit(X, y)
    np.testing.assert_array_equal(model.predict_proba(X), before)


def test_the_docstring_and_the_guide_say_pickles_are_for_trusted_files():
    import nnfs.sklearn as module

    assert "unpickle only files you trust" in " ".join(module.__doc__.split())
    guide = " ".join((ROOT / "docs" / "guide" / "sklearn.md").read_text(encoding="utf-8").split())
    assert "A pickle is for trusted files only" in guide


# --- import and install --------------------------------------------------------------------------

def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_import_nnfs_imports_no_scikit_learn():
    result = _python("import sys, nnfs; nnfs.backend('cpu'); "
                     "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                     "('sklearn', 'onnx', 'onnxruntime')))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    result = _python("import nnfs; print(nnfs.sklearn.NnfsClassifier.__name__)")
    assert result.stdout.strip() == "NnfsClassifier", result.stderr


def test_without_scikit_learn_the_error_names_the_extra():
    result = _python("import sys; sys.modules['sklearn'] = None\n"
                     "import nnfs\n"
                     "try:\n    import nnfs.sklearn\n"
                     "except ImportError as error:\n"
                     "    print(type(error).__name__, isinstance(error, nnfs.NnfsError), error)")
    assert result.stdout.strip() == (
        "MissingDependency True nnfs.sklearn needs scikit-learn, which is not installed: "
        "pip install 'nnfs-core[sklearn]'"), result.stderr


# --- the user guide ------------------------------------------------------------------------------

def guide_example(heading: str) -> str:
    """The first python block after ``heading`` in the guide's page of the estimators."""
    text = (ROOT / "docs" / "guide" / "sklearn.md").read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_guide_example_runs():
    namespace: dict = {}
    exec(compile(guide_example("# scikit-learn estimators"), "sklearn.md", "exec"), namespace)
    assert namespace["search"].best_score_ > 0.9
    assert namespace["accuracy"] > 0.9
