"""``nnfs train`` and ``nnfs predict``: the main job, and using what it saved."""

from __future__ import annotations

import argparse
import csv
import io as text_io
import math
import re
import sys
import time
from typing import Any

import numpy as np

import nnfs

from . import optimizers, schedules
from ._scaling import (
    check_representable,
    check_targets,
    finite,
    fold_scaling,
    folded_parameters,
    scaling_for,
    standardizer,  # noqa: F401 - where benchmarks/digits_vs_sklearn.py finds it
)
from .errors import NnfsValueError, TrainingDiverged
from .network import FullyConnected, fully_connected

DEFAULT_LAYERS = "256:relu,10:softmax"  # for the digits; an example in messages
DEFAULT_HIDDEN = "256:relu"
#: The hidden layer of a regression: narrow and bounded, so that plain SGD at the default
#: learning rates stays stable on a linear output (256 relu units diverge at eta 0.05).
DEFAULT_REGRESSION_HIDDEN = "64:tanh"
DEFAULT_EPOCHS = 50
DEFAULT_BATCH = 16
DEFAULT_ETA = "30:0.05,20:0.01"  # over DEFAULT_EPOCHS; scaled to --epochs (default_schedule)


#: One item of --layers: units in ASCII digits (not "²", which str.isdigit takes), an
#: activation, and optionally a dropout rate.
_LAYER = re.compile(r"\s*([0-9]+)\s*:\s*([^\s:,]+)\s*(?::\s*([^\s:,]*)\s*)?")


def parse_layers(text: str, dropout: float | None = None) -> list[FullyConnected]:
    """``"64:tanh,10:softmax"`` as layers; the last one is the output layer. An item may end
    with its dropout rate (``"256:relu:0.2"``); ``dropout`` is the rate of the hidden layers
    that give none (``--dropout``)."""
    layers = []
    items = text.split(",")
    for number, item in enumerate(items):
        match = _LAYER.fullmatch(item)
        if match is None:
            raise NnfsValueError(f"--layers: {item.strip()!r} must be UNITS:ACTIVATION or "
                                 f"UNITS:ACTIVATION:DROPOUT, as in {DEFAULT_LAYERS!r} or "
                                 "'256:relu:0.2,10:softmax'")
        units, activation, rate = match.groups()
        hidden = number < len(items) - 1
        if rate:
            try:
                value = float(rate)
            except ValueError:
                raise NnfsValueError(f"--layers: {item.strip()!r}: the dropout rate {rate!r} "
                                     "must be a number in [0, 1) (UNITS:ACTIVATION:DROPOUT, "
                                     "as in 256:relu:0.2)") from None
        else:
            value = dropout if dropout is not None and hidden else 0.0
        try:
            layers.append(fully_connected(int(units), activation, dropout=value))
        except NnfsValueError as error:
            raise NnfsValueError(f"--layers: {item.strip()!r}: {error}") from None
    return layers


def parse_eta(text: str) -> float | list[tuple[int, float]]:
    """``"0.5"``, or a schedule ``"20:0.5,20:0.1"`` of EPOCHS:ETA pairs."""
    try:
        if ":" not in text:
            return float(text)
        pairs = []
        for item in text.split(","):
            epochs, eta = item.split(":")
            pairs.append((int(epochs), float(eta)))
        return pairs
    except ValueError:
        raise NnfsValueError(f"--eta: {text!r} must be a number such as 0.5, or a schedule of "
                             "EPOCHS:ETA pairs such as 20:0.5,20:0.1") from None


def default_schedule(epochs: int) -> list[tuple[int, float]]:
    """The default learning rates over ``epochs`` epochs: the first 60% at 0.05, the rest at
    0.01 (30 and 20 of the default 50)."""
    first = max(1, round(epochs * 0.6))
    pairs = [(first, 0.05)]
    if epochs > first:
        pairs.append((epochs - first, 0.01))
    return pairs


def learning_rates(eta_text: str | None, epochs: int | None) -> float | list[tuple[int, float]]:
    """What --eta and --epochs ask for together: one rate for ``epochs``, a schedule (whose
    length --epochs may repeat but not contradict), or the default schedule over --epochs."""
    if epochs is not None and epochs < 1:
        raise NnfsValueError(f"--epochs must be positive, got {epochs}")
    if eta_text is None:
        return default_schedule(DEFAULT_EPOCHS if epochs is None else epochs)
    eta = parse_eta(eta_text)
    if isinstance(eta, list) and epochs is not None and epochs != sum(n for n, _ in eta):
        raise NnfsValueError(f"--epochs {epochs} contradicts the schedule --eta {eta_text}, "
                             f"which has {sum(n for n, _ in eta)} epochs; give one of them")
    return eta


#: --schedule's choices.
SCHEDULES = ("cosine", "plateau")


def training_plan(args: argparse.Namespace):
    """(epochs, optimizer, schedule) that the command line asks for, checked before any work:
    --optimizer with --eta (a rate, or EPOCHS:ETA pairs), --momentum, --weight-decay and
    --schedule. Plain SGD keeps the default schedule of 60% of the epochs at 0.05, then 0.01;
    the others start from their own rate (0.05 with momentum, 0.003 for Adam and AdamW, which
    reaches 98% on the digits in 20 epochs)."""
    name = args.optimizer
    if args.momentum is not None and name not in ("momentum", "nesterov"):
        raise NnfsValueError(f"--momentum is for --optimizer momentum or nesterov, not {name}")
    if args.schedule is not None and args.eta is not None and ":" in args.eta:
        raise NnfsValueError(f"--schedule {args.schedule} sets the rate of each epoch from "
                             f"--eta's one rate; --eta {args.eta} is a schedule of its own: "
                             "give one of them")
    if args.epochs is not None and args.epochs < 1:
        raise NnfsValueError(f"--epochs must be positive, got {args.epochs}")
    if name == "sgd" and args.schedule is None:
        eta = learning_rates(args.eta, args.epochs)
    else:
        eta = parse_eta(args.eta) if args.eta is not None else optimizers.RATES[name]
        if isinstance(eta, list) and args.epochs is not None \
                and args.epochs != sum(n for n, _ in eta):
            raise NnfsValueError(f"--epochs {args.epochs} contradicts the schedule --eta "
                                 f"{args.eta}, which has {sum(n for n, _ in eta)} epochs")
    schedule: list[tuple[int, float]] | schedules.Schedule | None
    if isinstance(eta, list):
        epochs, schedule, rate = sum(n for n, _ in eta), eta, eta[0][1]
    else:
        epochs, schedule, rate = args.epochs or DEFAULT_EPOCHS, None, eta
    if args.schedule == "cosine":
        schedule = schedules.Cosine()
    elif args.schedule == "plateau":
        schedule = schedules.ReduceOnPlateau(factor=0.5, patience=3)
    try:
        optimizer = optimizers.named(name, rate, momentum=args.momentum,
                                     weight_decay=args.weight_decay)
    except NnfsValueError as error:
        raise NnfsValueError(f"--optimizer {name}: {error}") from None
    return epochs, optimizer, schedule


def write_log(path, history) -> None:
    """Each epoch's figures as CSV, the way Keras' CSVLogger writes them: a header line, then
    one line per epoch (here from 1), the whole file rewritten after every epoch (whole or not
    at all, so a reader never sees half a line)."""
    from .io import write_whole

    names = ["cost", "validation_cost", "validation_accuracy", "eta"]
    columns = [name for name in names if getattr(history, name)]
    lines = [",".join(["epoch", *columns])]
    for epoch in range(history.epochs):
        lines.append(",".join([str(epoch + 1)] + [repr(float(getattr(history, name)[epoch]))
                                                   for name in columns]))
    text = "\n".join(lines) + "\n"
    write_whole(path, lambda file: file.write(text.encode()), "--log")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default=None,
                        help="NAME or NAME:key=value,... (default: NNFS_BACKEND, else the best "
                             "installed backend; nnfs backends lists them)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--layers", default=None,
                        help="UNITS:ACTIVATION,... ending with the output layer (default: "
                             f"{DEFAULT_HIDDEN} and a softmax unit per class, or for "
                             f"regression {DEFAULT_REGRESSION_HIDDEN},1:linear); "
                             "UNITS:ACTIVATION:DROPOUT gives a hidden layer its dropout rate, "
                             "as in 256:relu:0.2")
    parser.add_argument("--task", default="auto", choices=["auto", "classification", "regression"],
                        help="what the labels are: classes, or regression targets (trained with "
                             "a linear output on the quadratic cost); auto: regression when the "
                             "labels are numbers not all whole (default: auto)")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"epochs (default {DEFAULT_EPOCHS}; with a schedule, its length)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--eta", default=None,
                        help="learning rate, or a schedule EPOCHS:ETA,... (default: 0.05 for the "
                             "first 60%% of the epochs, then 0.01; "
                             f"{DEFAULT_ETA} for the default {DEFAULT_EPOCHS})")
    parser.add_argument("--optimizer", default="sgd", choices=list(optimizers.RATES),
                        help="the update rule (torch.optim's); momentum and nesterov start from "
                             "--eta 0.05, adam and adamw from 0.003 (default: sgd, plain)")
    parser.add_argument("--momentum", type=float, default=None,
                        help="with --optimizer momentum or nesterov (default 0.9)")
    parser.add_argument("--weight-decay", type=float, default=None,
                        help="weight decay on the weights, not the biases (default 0; 0.01 for "
                             "adamw)")
    parser.add_argument("--dropout", type=float, default=None,
                        help="dropout rate of every hidden layer whose --layers item gives none")
    parser.add_argument("--schedule", default=None, choices=list(SCHEDULES),
                        help="the learning rate of each epoch from --eta: cosine (down to 0 "
                             "over the epochs) or plateau (halved after 3 epochs without a "
                             "better validation cost)")
    parser.add_argument("--patience", type=int, default=None,
                        help="stop once the validation cost has not improved for this many "
                             "epochs, and keep the best epoch's weights")
    parser.add_argument("--validation-fraction", type=float, default=0.1,
                        help="with --patience or --schedule plateau: the part of the training "
                             "data held out to watch (default 0.1); the test data is only "
                             "measured")
    parser.add_argument("--log", default=None, metavar="FILE.csv",
                        help="each epoch's figures as CSV (as Keras' CSVLogger writes)")
    parser.add_argument("--resume", default=None, metavar="FILE",
                        help="continue the run whose checkpoint --save ... --checkpoint-every "
                             "wrote (the same command line otherwise)")
    parser.add_argument("--cost", default="auto", choices=["auto", "quadratic", "cross_entropy"],
                        help="auto: cross-entropy for sigmoid and softmax outputs, else quadratic")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, split and shuffling")
    parser.add_argument("--data", default=None,
                        help="a .npz (X, y), .csv (label column) or MNIST IDX file; default: "
                             "scikit-learn's digits")
    parser.add_argument("--labels", default=None, help="the IDX labels file, if not found by name")
    parser.add_argument("--label-column", default=None,
                        help="CSV label column: header name or index (default: the last); its "
                             "labels may be class numbers, text, or regression targets")
    parser.add_argument("--delimiter", default=",",
                        help="the CSV files' delimiter: one character, or 'tab' (default: ,)")
    parser.add_argument("--test-data", default=None,
                        help="a separate test set (same format); default: hold out --test-fraction")
    parser.add_argument("--test-labels", default=None, help="the IDX labels file of --test-data")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--save", default=None, metavar="FILE",
                        help="save the trained model: FILE.npz, or FILE.safetensors (needs "
                             "nnfs-core[safetensors])")
    parser.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                        help="with --save: also save every N epochs, each file written whole, "
                             "with what --resume needs to continue the run")
    parser.add_argument("--report", action="store_true",
                        help="also print the confusion matrix and each class's precision and "
                             "recall on the test data")
    parser.add_argument("--plot", default=None, metavar="PNG", help="plot the cost per epoch")
    parser.add_argument("--no-standardize", action="store_true",
                        help="train on the features (and regression targets) as the reader "
                             "gives them, not scaled to zero mean and unit variance")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--mpi", action="store_true",
                        help="train data-parallel across the ranks of an MPI job, --batch-size "
                             "samples per rank (on by itself when mpiexec starts more than one "
                             "process); needs nnfs-core[mpi]")


def _load_data(args: argparse.Namespace):
    from . import data

    if args.data is None:
        if args.task == "regression":
            raise NnfsValueError("--task regression needs --data: the digits are classes")
        dataset = data.digits()
    else:
        dataset = data.read(args.data, args.label_column, args.labels,
                            delimiter=args.delimiter, task=args.task)
    if dataset.y is None:
        raise NnfsValueError(f"{args.data}: training needs labels (a label column or file)")
    if args.test_data is not None:
        test = data.read(args.test_data, args.label_column, args.test_labels,
                         delimiter=args.delimiter, task=dataset.task)
        if test.y is None:
            raise NnfsValueError(f"{args.test_data}: the test set needs labels")
        if test.X.shape[1] != dataset.X.shape[1]:
            raise NnfsValueError(f"{args.test_data} has {test.X.shape[1]} features, the training "
                                 f"data {dataset.X.shape[1]}")
        return dataset, data.in_classes_of(test, dataset)
    return data.split(dataset, args.test_fraction, args.seed)


def _data_parallel_world(args: argparse.Namespace):
    """The MPI world to train across with --mpi, or when an MPI launcher started this process
    among others; None to train in this process alone."""
    if args.mpi or nnfs.mpi.launched_size() > 1:
        return nnfs.mpi.world()
    return None


def _on_every_rank(world, what: str, action):
    """``action()``; in a data-parallel job, through ``world.together``: if it fails on any
    rank, it fails on every rank with an error naming those ranks."""
    return action() if world is None else world.together(what, action)


def run_train(args: argparse.Namespace) -> int:
    # the same command line on every rank: checked alone, before any work
    layers = None if args.layers is None else parse_layers(args.layers, args.dropout)
    plan = training_plan(args)
    if args.patience is not None and args.patience < 0:
        raise NnfsValueError(f"--patience must be 0 or more, got {args.patience}")
    if not 0.0 < args.validation_fraction < 1.0:
        raise NnfsValueError(f"--validation-fraction must be between 0 and 1, got "
                             f"{args.validation_fraction}")
    if args.checkpoint_every and not args.save:
        raise NnfsValueError(f"--checkpoint-every {args.checkpoint_every} needs --save FILE, "
                             "the file to write the checkpoints to")
    if args.checkpoint_every < 0:
        raise NnfsValueError(f"--checkpoint-every must be positive, got {args.checkpoint_every}")
    if args.checkpoint_every and str(args.save).lower().endswith(".safetensors"):
        raise NnfsValueError(f"--checkpoint-every writes checkpoints that --resume continues "
                             f"from, with the optimizer's state and the run's position, which "
                             f"only the npz format holds: give --save a name that does not end "
                             f"in .safetensors (got {args.save!r})")
    from .data import check_delimiter

    args.delimiter = check_delimiter(args.delimiter)
    world = _data_parallel_world(args)
    if world is None:
        return _train(args, layers, plan, None)
    try:
        return _train(args, layers, plan, world)
    except BaseException as error:  # alone on this rank: the others would wait for it
        if not nnfs.mpi.collective_error(error):
            world.abort("nnfs train", error)
        raise


#: Bytes a model file holds beyond its parameters (the zip and .npy headers, the small entries).
MODEL_FILE_OVERHEAD = 4096
#: Bytes a cost plot takes, about (a PNG of 700×400 pixels).
PLOT_FILE_SIZE = 100_000


def _checkpoint_copies(args: argparse.Namespace) -> int:
    """How many vectors of the parameters' size a checkpoint of --checkpoint-every holds: the
    model, the training's weights beside the folded ones, the optimizer's state and early
    stopping's best weights (its other entries fit in MODEL_FILE_OVERHEAD for small data)."""
    state = {"sgd": 0, "momentum": 1, "nesterov": 1}.get(getattr(args, "optimizer", "sgd"), 2)
    return (1 + (not args.no_standardize) + state
            + (getattr(args, "patience", None) is not None))


def _check_outputs(args: argparse.Namespace, parameters: int | None = None,
                   itemsize: int = 4) -> None:
    """Refuse, before any training, the files train would fail to write: --save (a model of
    ``parameters``, once they are known, in a format that can be written here) and --plot."""
    from .io import check_format, check_writable

    if args.save:
        check_format(args.save)
        copies = 1
        if getattr(args, "checkpoint_every", 0):  # a checkpoint holds more than the model
            copies = _checkpoint_copies(args)
        size = (None if parameters is None
                else copies * parameters * itemsize + MODEL_FILE_OVERHEAD)
        check_writable(args.save, "--save", size)
    if args.plot:
        check_writable(args.plot, "--plot", None if parameters is None else PLOT_FILE_SIZE)
    if getattr(args, "log", None):
        check_writable(args.log, "--log")


def output_layers(layers, train, classes: int, dropout: float | None = None):
    """``--layers``, checked against the data, or by default the hidden layer (of dropout
    rate ``dropout``) and the output the data asks for: a softmax unit per class, or one
    linear output for regression."""
    if train.task == "regression":
        if layers is None:
            return parse_layers(f"{DEFAULT_REGRESSION_HIDDEN},1:linear", dropout)
        last = layers[-1]
        if (last.units, last.activation.kind) != (1, "linear"):
            raise NnfsValueError(
                f"regression trains a linear output on the quadratic cost: end --layers with "
                f"1:linear (one output for the label column), got {last.units}:"
                f"{last.activation.kind}")
        return layers
    if layers is None:
        return parse_layers(f"{DEFAULT_HIDDEN},{max(classes, 2)}:softmax", dropout)
    units = layers[-1].units
    if train.class_names is not None and units != classes:
        shown = ", ".join(map(repr, train.class_names[:5])) + (
            ", ..." if classes > 5 else "")
        raise NnfsValueError(
            f"the last layer has {units} units but the data has {classes} classes named by "
            f"text ({shown}), one output each; end --layers with {classes}:softmax")
    if units < classes:
        raise NnfsValueError(
            f"the last layer has {units} units but the data has {classes} "
            f"classes (labels 0 to {classes - 1}); end --layers with {classes}:softmax")
    return layers


def _model_labels(train, layers) -> dict:
    """What ``nnfs.save`` keeps of the data's labels: the task, and the classes' names."""
    from .io import check_labels

    labels: dict[str, Any] = {
        "task": "regression" if train.task == "regression" else "classification"}
    if train.class_names is not None:
        check_labels(train.class_names, labels["task"], layers[-1].units, "the data's labels")
        labels["classes"] = list(train.class_names)
    return labels


def _train(args: argparse.Namespace, layers, plan, world) -> int:
    from . import _metrics
    from .checkpoints import Checkpoints
    from .fit import fit

    epochs, optimizer, schedule = plan

    root = world is None or world.is_root  # the one rank that prints, plots and writes
    if args.seed < 0:
        raise NnfsValueError(f"--seed must be non-negative, got {args.seed}")
    if root:  # before the training, not after it
        _check_outputs(args)
    if args.plot and root:
        from .plot import require_matplotlib

        require_matplotlib()
    # every rank reads the data (and trains on its share of every batch), checks it, finds its
    # backend: each of these fails on every rank together, naming the ranks at fault
    train, test = _on_every_rank(world, "reading the data", lambda: _load_data(args))
    regression = train.task == "regression"
    classes = max(train.classes, test.classes)
    cost = None if args.cost == "auto" else args.cost
    watch = args.patience is not None or args.schedule == "plateau"
    if watch:  # watched on a part of the training data; the test data is only measured
        from . import data

        train, watched = _on_every_rank(world, "holding out the validation data",
                                        lambda: data.split(train, args.validation_fraction,
                                                           args.seed))

    def check_data():
        chosen = output_layers(layers, train, classes, args.dropout)
        if regression and cost == "cross_entropy":
            raise NnfsValueError("--cost cross_entropy is a classifier's: regression trains on "
                                 "the quadratic cost")
        check_representable(train.X, args.dtype, train.feature_names)
        if regression:
            check_targets(train.y, args.dtype)
        return chosen, _model_labels(train, chosen)

    chosen, labels = _on_every_rank(world, "checking the data", check_data)
    factory = _on_every_rank(world, "selecting the backend",
                             lambda: nnfs.backend(args.backend, args.dtype))
    quiet = args.quiet or not root
    say = (lambda *a: None) if quiet else print
    if regression:
        what = f"regression targets from {train.y.min():.6g} to {train.y.max():.6g}"
    else:
        what = f"{classes} classes"
    say(f"data: {args.data or 'digits (scikit-learn)'}: {len(train)} training and {len(test)} "
        f"test samples, {train.X.shape[1]} features, {what}"
        + (f"; {len(watched)} training samples held out for validation" if watch else ""))
    scaling = scaling_for(train, not args.no_standardize)
    with nnfs.inference_network(factory, train.X.shape[1], chosen, seed=args.seed) as network:
        if root:  # the model's size is known: is there room for it?
            _check_outputs(args, network.parameter_count, factory.itemsize)
        say(f"network: {network.in_dim} → "
            + " → ".join(f"{layer.out_dim} {layer.activation.kind}" for layer in network.layers)
            + f", {network.parameter_count} parameters, on {factory.describe()}")
        if world is not None:
            say(f"data-parallel: {world.size} ranks ({world.library}), batches of "
                f"{args.batch_size} per rank, {args.batch_size * world.size} per update")
        say(f"optimizer: {optimizer}" + ("" if schedule is None else f", schedule {schedule}"))
        total = epochs
        every = max(1, total // 10)
        terminal = sys.stderr.isatty()
        checkpointed = []  # the epochs saved so far
        shown = "validation" if watch else "test"

        def on_epoch(epoch: int, history) -> None:
            if args.checkpoint_every and (epoch % args.checkpoint_every == 0
                                          or epoch == total) and finite(network):
                checkpointed.append(epoch)  # fit wrote it before calling this (if finite)
            if args.log and root:
                write_log(args.log, history)
            if not quiet and not terminal and (epoch % every == 0 or epoch == total):
                if regression:  # the quadratic cost is half the mean square error
                    mse = 2 * max(0.0, history.validation_cost[-1])
                    measure = f"{shown} rmse {scaling.target_scale * math.sqrt(mse):.5g}"
                else:
                    measure = f"{shown} accuracy {history.validation_accuracy[-1]:.4f}"
                print(f"epoch {epoch:>4}/{total}: cost {history.cost[-1]:.5g}, {measure}",
                      flush=True)

        def targets(dataset):
            return scaling.targets(dataset.y) if regression else dataset.y

        validation = (scaling.inputs(test.X), targets(test))
        if watch:
            validation = (scaling.inputs(watched.X), targets(watched))
        checkpoint = None
        if args.checkpoint_every:  # each checkpoint's model takes the data as the final one
            checkpoint = Checkpoints(
                args.save, every=args.checkpoint_every,
                model=lambda parameters: folded_parameters(parameters, network, scaling))
        stopping = None if args.patience is None else nnfs.EarlyStopping(patience=args.patience)
        started = time.perf_counter()
        try:
            history = fit(network, scaling.inputs(train.X), targets(train), epochs=epochs,
                          optimizer=optimizer, schedule=schedule, batch_size=args.batch_size,
                          cost=cost, seed=args.seed, validation=validation, quiet=quiet,
                          on_epoch=on_epoch, early_stopping=stopping, checkpoint=checkpoint,
                          resume=args.resume, data_parallel=world)
        except (KeyboardInterrupt, TrainingDiverged) as stopped:
            saved = (f"{args.save} holds the checkpoint of epoch {checkpointed[-1]}"
                     if checkpointed else "nothing was saved")
            if isinstance(stopped, TrainingDiverged):  # one line, and exit status 1
                raise TrainingDiverged(f"{stopped} ({saved})", stopped.epoch, stopped.eta) \
                    from None
            raise KeyboardInterrupt(f"training stopped; {saved}") from None
        seconds = time.perf_counter() - started
        # the saved model then takes the data as the user has it
        model, note = fold_scaling(network, scaling)
        try:
            outputs = nnfs.predict(model, test.X)
            if root and note:
                print(f"nnfs train: note: {note}", file=sys.stderr)
            if root:
                done = f"after {history.epochs} epochs in {seconds:.2f} s"
                if regression:
                    scores = _metrics.regression(test.y, outputs[:, 0])
                    print(f"test rmse: {scores.rmse:.6g}, mae: {scores.mae:.6g}, r2: "
                          f"{scores.r2:.4f} ({len(test)} samples) {done}")
                else:
                    predicted = outputs.argmax(axis=1)
                    right = int(np.count_nonzero(predicted == test.y))
                    print(f"test accuracy: {right / len(test):.2%} ({right} of {len(test)}) "
                          f"{done}")
                if history.stopped_epoch is not None:
                    print(f"early stopping: stopped after epoch {history.stopped_epoch}, the "
                          f"weights of epoch {history.best_epoch} (the best validation cost)")
                if args.report and not regression:
                    classified = _metrics.classification(test.y, predicted, outputs.shape[1])
                    names = [train.label_text(i) for i in range(outputs.shape[1])]
                    print(_metrics.confusion_table(classified, names))
            if world is not None:
                say(f"data-parallel: {history.allreduce_seconds:.2f} s of the {seconds:.2f} s "
                    f"summing gradients across the {world.size} ranks")
            if args.save:  # the model, over the last checkpoint: the run is complete
                from .io import save

                (save if world is None else world.save)(model, args.save, **labels)
                say(f"saved: {args.save}")
        finally:
            if model is not network:
                model.release()
    if args.plot and root:
        from .plot import plot_history

        plot_history(history, args.plot, f"nnfs train: {train.name}")
        say(f"plot: {args.plot}")
    return 0


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="a model saved by nnfs train --save (.npz or .safetensors)")
    parser.add_argument("--data", required=True,
                        help="samples: .npz (X), .csv or MNIST IDX; a label column or labels "
                             "file, if present, is used to report accuracy (or, for a "
                             "regression model, RMSE, MAE and R²)")
    parser.add_argument("--labels", default=None, help="the IDX labels file, if not found by name")
    parser.add_argument("--label-column", default=None,
                        help="CSV label column (name or index), or 'none' when every column is "
                             "a feature (default: the last column, when there is one more "
                             "column than the model has inputs)")
    parser.add_argument("--delimiter", default=",",
                        help="the CSV file's delimiter: one character, or 'tab' (default: ,)")
    parser.add_argument("--output", default=None,
                        help="CSV file for the predictions (default: stdout)")
    parser.add_argument("--probabilities", action="store_true",
                        help="write every output of the network, not only the predicted label")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--dtype", default=None, choices=["float32", "float64"],
                        help="the network's dtype (default: the model file's)")


def _predictions_csv(model, outputs: np.ndarray, probabilities: bool) -> tuple[str, list[str]]:
    """The predictions as CSV text (labels, every output, or values), and the label (as
    text) of each sample, for a classifier."""
    text = text_io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    if model.task == "regression":
        digits = 9 if outputs.dtype == np.float32 else 17  # enough to read back the same number
        names = ["value"] if outputs.shape[1] == 1 else [f"value_{i}"
                                                         for i in range(outputs.shape[1])]
        writer.writerow(names)
        writer.writerows([f"{v:.{digits}g}" for v in row] for row in outputs)
        return text.getvalue(), []
    indices = outputs.argmax(axis=1) if outputs.shape[1] > 1 else (outputs[:, 0] > 0.5).astype(int)
    classes = list(model.classes) if model.classes is not None else None
    labels = [classes[i] for i in indices] if classes else [str(i) for i in indices]
    if probabilities:
        columns = classes if classes and len(classes) == outputs.shape[1] else \
            [f"output_{i}" for i in range(outputs.shape[1])]
        writer.writerow(["label", *columns])
        writer.writerows([label, *(f"{v:.6g}" for v in row)]
                         for label, row in zip(labels, outputs, strict=True))
    else:
        writer.writerow(["label"])
        writer.writerows([label] for label in labels)
    return text.getvalue(), labels


def run_predict(args: argparse.Namespace) -> int:
    from . import _metrics, data
    from .io import check_writable, inspect_model, load, write_whole

    if nnfs.mpi.launched_size() > 1 and nnfs.mpi.launched_rank() != 0:
        # predicting is not shared out: under mpiexec rank 0 does all of it and is the only
        # one to print and write, so that --output is not written once per rank
        return 0
    delimiter = data.check_delimiter(args.delimiter)
    if args.output:
        check_writable(args.output, "--output")
    model = inspect_model(args.model)
    regression = model.task == "regression"
    if regression and args.probabilities:
        raise NnfsValueError(f"--probabilities: {args.model} is a regression model, whose "
                             "outputs are the values it writes")
    dataset = data.read(args.data, args.label_column, args.labels, delimiter=delimiter,
                        task="regression" if regression else "classification",
                        features=model.in_dim)
    if dataset.X.shape[1] != model.in_dim:
        raise NnfsValueError(f"{args.data} has {dataset.X.shape[1]} features per sample but the "
                             f"model {args.model} takes {model.in_dim}")
    factory = nnfs.backend(args.backend, args.dtype or model.dtype)
    with load(args.model, factory) as network:
        outputs = nnfs.predict(network, dataset.X)
    text, labels = _predictions_csv(model, outputs, args.probabilities)
    if args.output:
        write_whole(args.output, lambda file: file.write(text.encode()), "--output")
    else:
        sys.stdout.write(text)
    if dataset.y is None:
        return 0
    if regression:
        scores = _metrics.regression(dataset.y, outputs[:, 0])
        print(f"rmse: {scores.rmse:.6g}, mae: {scores.mae:.6g}, r2: {scores.r2:.4f} "
              f"({len(dataset)} samples)", file=sys.stderr)
    else:
        right = sum(label == dataset.label_text(int(i)) for label, i in
                    zip(labels, dataset.y, strict=True))
        print(f"accuracy: {right / len(dataset):.2%} ({right} of {len(dataset)})", file=sys.stderr)
    return 0
