"""``rnncast train``'s flags and the :class:`~rnncast.model.config.TrainConfig` they give.

No TensorFlow or Keras here: ``rnncast train --help`` (and ``rnncast evaluate --help``, which
shares the model and training flags) answers without loading them.
"""

from __future__ import annotations

import argparse

from rnncast.errors import TrainError
from rnncast.model.config import (
    ANCHORS,
    CALIBRATIONS,
    CELL_TYPES,
    DISTRIBUTIONS,
    INPUTS,
    NONNEGATIVE,
    POINT_LOSSES,
    TrainConfig,
)
from rnncast.pipeline.core.progress import MODES as PROGRESS_MODES
from rnncast.usage import HelpFormatter, mark_required


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``rnncast train``."""
    parser = argparse.ArgumentParser(
        prog="rnncast train",
        allow_abbrev=False,
        description="Train a multi-layer RNN forecaster on a dataset written by 'rnncast "
        "dataset' (truncated BPTT with state carried across batches), with checkpoints, "
        "early stopping and resume; exports a SavedModel to MODEL_DIR/export at the end.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--data", help="Dataset directory (rnncast dataset).")
    parser.add_argument("--model-dir", help="Checkpoints, logs and export.")
    parser.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default="auto",
        help="A per-batch bar on stderr (ETA, running training loss): auto = when stderr is "
        "a terminal. The per-epoch lines are printed either way.",
    )
    mark_required(parser, ["--data", "--model-dir"])
    add_training_arguments(parser)
    return parser


def add_training_arguments(parser, fine_tuning: bool = True) -> None:
    """The model and training flags (shared by ``rnncast train`` and ``rnncast evaluate``;
    evaluate refuses ``--init-from``, so it passes ``fine_tuning=False`` and the flag is not
    listed)."""
    defaults = TrainConfig(data="", model_dir="")
    parser.add_argument(
        "--cell", choices=sorted(CELL_TYPES), default=defaults.cell, help="Recurrent cell."
    )
    parser.add_argument("--layers", type=int, default=defaults.layers, help="Stacked layers.")
    parser.add_argument(
        "--anchor",
        choices=("auto", *ANCHORS),
        default=defaults.anchor,
        help="auto: the one of last and seasonal (over any of --lags) with the lowest "
        "in-sample error on the training data; "
        "last: forecasts are the value at the step plus what the network adds (an "
        "untrained network forecasts naive); seasonal: the value one season (the first of "
        "--lags) before the target plus what the network adds (seasonal naive; 'last' where "
        "the data has no season); none: the network forecasts the value itself.",
    )
    parser.add_argument(
        "--nonnegative",
        choices=NONNEGATIVE,
        default=defaults.nonnegative,
        help="auto: clip forecasts and quantiles at zero when no training value is negative "
        "(counts, sales, prices); off: never clip.",
    )
    parser.add_argument(
        "--min-batches-per-epoch",
        type=int,
        default=defaults.min_batches_per_epoch,
        help="Least optimizer steps per epoch: where one pass over the training data has "
        "fewer batches (a few long series), each epoch makes several passes, each in its own "
        "seeded order; 0: one pass.",
    )
    parser.add_argument(
        "--calibration",
        choices=CALIBRATIONS,
        default=defaults.calibration,
        help="conformal: after training, widen or narrow the quantile intervals per horizon "
        "step so the outermost one covers its nominal share of the validation targets; "
        "none: the intervals as trained.",
    )
    parser.add_argument(
        "--inputs",
        choices=INPUTS,
        default=defaults.inputs,
        help="What the network sees of the value: its changes over one step and over each "
        "of --lags (level-free), or the scaled level itself.",
    )
    parser.add_argument(
        "--lags",
        default="auto",
        help="Seasonal lags in steps, main season first, e.g. 24,168; 'auto' takes them "
        "from the dataset's frequency (hourly 24,168; daily 7; monthly 12; yearly none); "
        "'none' for no lags.",
    )
    parser.add_argument("--units", type=int, default=defaults.units, help="Units per layer.")
    parser.add_argument(
        "--dropout",
        type=float,
        default=defaults.dropout,
        help="Dropout on each layer's inputs and outputs (never the state).",
    )
    parser.add_argument(
        "--quantiles",
        default=",".join(map(str, defaults.quantiles)),
        help="Comma-separated quantile levels of the pinball loss.",
    )
    parser.add_argument(
        "--loss",
        choices=POINT_LOSSES,
        default=defaults.loss,
        help="Point-forecast loss (added to the pinball loss).",
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="Maximum epochs.")
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=defaults.learning_rate,
        help="Initial Adam learning rate (cosine decay to 5%%).",
    )
    parser.add_argument(
        "--clip-norm", type=float, default=defaults.clip_norm, help="Global gradient-norm clipping."
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="Seed; same seed, same weights."
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=defaults.patience,
        help="Early stopping: epochs without validation improvement.",
    )
    parser.add_argument(
        "--distribution",
        choices=DISTRIBUTIONS,
        default=defaults.distribution,
        help="tf.distribute strategy: none; mirrored (all local GPUs, MirroredStrategy); "
        "multi-worker (MultiWorkerMirroredStrategy over the cluster in TF_CONFIG). Lanes of "
        "each batch are split across replicas; the batch size must divide evenly.",
    )
    parser.add_argument(
        "--jit-compile",
        action="store_true",
        help="Compile the train and eval steps with XLA (single device): faster on CPU "
        "(BENCHMARKS.md); the numbers differ from the plain steps in the last bits.",
    )
    if not fine_tuning:
        return
    parser.add_argument(
        "--init-from",
        default=None,
        metavar="MODEL_DIR",
        help="Fine-tune: start a new run from the best weights of this model directory "
        "(same architecture and features) instead of a random initialisation.",
    )


def parse_lags(text: str) -> tuple[int, ...] | None:
    """``--lags``: 'auto' (None), 'none' (no lags) or comma-separated steps."""
    if text == "auto":
        return None
    if text == "none":
        return ()
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise TrainError(
            f"rnncast train: --lags must be 'auto', 'none' or steps such as 24,168, got {text!r}"
        ) from None


def config_from_args(args: argparse.Namespace, data: str, model_dir: str) -> TrainConfig:
    """The :class:`TrainConfig` of parsed training flags (see :func:`add_training_arguments`)."""
    return TrainConfig(
        data=data,
        model_dir=model_dir,
        cell=args.cell,
        layers=args.layers,
        units=args.units,
        dropout=args.dropout,
        quantiles=tuple(float(q) for q in args.quantiles.split(",") if q),
        loss=args.loss,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        clip_norm=args.clip_norm,
        seed=args.seed,
        patience=args.patience,
        distribution=args.distribution,
        jit_compile=args.jit_compile,
        anchor=args.anchor,
        inputs=args.inputs,
        lags=parse_lags(args.lags),
        calibration=args.calibration,
        min_batches_per_epoch=args.min_batches_per_epoch,
        nonnegative=args.nonnegative,
        init_from=getattr(args, "init_from", None),
    )
