"""What a training run is: its settings (:class:`TrainConfig`), the files of its model
directory, and the network those settings and the dataset build (:func:`build_model`).

Training (:mod:`rnncast.model.train`) and the export (:mod:`rnncast.model.export`) both read
a model directory through this module; neither imports the other.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from rnncast.errors import TrainError

if TYPE_CHECKING:  # types only: no Keras here, so `rnncast train --help` is quick
    from rnncast.model.forecaster import RNNForecaster

#: Supported cell types and the state tensors each carries per layer (model.rnn).
CELL_TYPES: dict[str, tuple[str, ...]] = {
    "rnn": ("h",),
    "lstm": ("h", "c"),
    "gru": ("h",),
}
POINT_LOSSES = ("mse", "mae")
# What the head's outputs are added to: nothing, the value at the step (channel 0 of the
# inputs, scaled), so that an untrained network forecasts "same as now" (naive) and learns
# the change (as LSTNet's linear highway and ES-RNN's level do), or the seasonal-naive
# forecast of the first seasonal lag (the value one season before the target step).
ANCHORS = ("none", "last", "seasonal")
# What the network sees of the value: the scaled value itself, or its changes (see
# model.forecaster.LagMemory), which do not depend on the level.
INPUTS = ("level", "change")

CONFIG_FILE = "train_config.json"


DISTRIBUTIONS = ("none", "mirrored", "multi-worker")


HISTORY_FILE = "history.json"


CALIBRATION_FILE = "calibration.json"


CALIBRATIONS = ("conformal", "none")


NONNEGATIVE = ("auto", "off")


DATASET_FILE = "dataset_metadata.json"


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (the model directory remembers them)."""

    data: str
    model_dir: str
    cell: str = "gru"
    layers: int = 2
    units: int = 64
    dropout: float = 0.1
    quantiles: tuple[float, ...] = field(default_factory=lambda: (0.1, 0.5, 0.9))
    loss: str = "mae"
    epochs: int = 20
    learning_rate: float = 3e-3
    clip_norm: float = 1.0
    seed: int = 0
    patience: int = 5
    distribution: str = "none"
    # XLA-compiled train and eval steps (single device): faster on CPU (BENCHMARKS.md); the
    # numbers differ from the plain steps in the last bits, and are reproducible either way.
    jit_compile: bool = False
    # What the outputs are added to (model_anchor): "auto" picks the last value or seasonal
    # naive over one of the lags, whichever fits the training data best.
    anchor: str = "auto"
    # What the network sees of the value: the level, or its changes over one step and over
    # the seasonal lags (level-free; see model.forecaster).
    inputs: str = "change"
    # Seasonal lags in steps, main season first; None: from the dataset's frequency
    # (rnncast.pipeline.core.series.seasonal_lags).
    lags: tuple[int, ...] | None = None
    # Clip forecasts at zero where no training value is negative ("auto"), or never ("off").
    nonnegative: str = "auto"
    # A floor on optimizer steps per epoch: where one pass over the training streams has
    # fewer batches (a few long series), an epoch makes several passes (issue 12: one long
    # series gave 5 batches per epoch, 100 steps in 20 epochs, still improving).
    min_batches_per_epoch: int = 50
    # Interval calibration on the validation split after training (model.calibration).
    calibration: str = "conformal"
    # Model directory whose best weights initialise a fresh run (fine-tuning).
    init_from: str | None = None

    def check(self) -> TrainConfig:
        problems = []
        if self.cell not in CELL_TYPES:
            problems.append(f"--cell must be one of {sorted(CELL_TYPES)}")
        if self.loss not in POINT_LOSSES:
            problems.append(f"--loss must be one of {POINT_LOSSES}")
        if self.layers < 1 or self.units < 1 or self.epochs < 1:
            problems.append("--layers, --units and --epochs must be >= 1")
        if not 0 <= self.dropout < 1:
            problems.append("--dropout must be in [0, 1)")
        if any(not 0 < q < 1 for q in self.quantiles) or len(set(self.quantiles)) != len(
            self.quantiles
        ):
            problems.append("--quantiles must be distinct levels in (0, 1)")
        if self.anchor not in ("auto", *ANCHORS):
            problems.append(f"--anchor must be one of {('auto', *ANCHORS)}")
        if self.calibration not in CALIBRATIONS:
            problems.append(f"--calibration must be one of {CALIBRATIONS}")
        if self.inputs not in INPUTS:
            problems.append(f"--inputs must be one of {INPUTS}")
        if self.lags is not None and (
            any(lag < 1 for lag in self.lags) or len(set(self.lags)) != len(self.lags)
        ):
            problems.append("--lags must be distinct positive numbers of steps")
        if self.distribution not in DISTRIBUTIONS:
            problems.append(f"--distribution must be one of {DISTRIBUTIONS}")
        elif self.jit_compile and self.distribution != "none":
            problems.append("--jit-compile works with --distribution none only")
        if self.nonnegative not in NONNEGATIVE:
            problems.append(f"--nonnegative must be one of {NONNEGATIVE}")
        if self.min_batches_per_epoch < 0:
            problems.append("--min-batches-per-epoch must be >= 0")
        if self.learning_rate <= 0 or self.clip_norm <= 0 or self.patience < 1:
            problems.append("--learning-rate, --clip-norm and --patience must be positive")
        if problems:
            raise TrainError("rnncast train: " + "; ".join(problems))
        return self

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the model directory: always, except in a multi-worker
        run, where only the chief does (:func:`chief_in_tf_config`)."""
        if self.distribution != "multi-worker":
            return True
        return chief_in_tf_config(os.environ.get("TF_CONFIG"))

    def model_settings(self) -> dict:
        """What defines the model and its training (not where data and outputs live)."""
        settings = asdict(self)
        settings.pop("model_dir")
        settings.pop("data")
        settings.pop("distribution")  # how training is spread does not change the model
        settings.pop("jit_compile")  # nor how its steps are compiled
        settings["quantiles"] = sorted(self.quantiles)
        if self.lags is not None:
            settings["lags"] = list(self.lags)  # as JSON reads it back
        if settings["init_from"] is None:
            settings.pop("init_from")  # model directories from before fine-tuning stay valid
        return settings


def model_lags(config: TrainConfig, metadata: dict) -> tuple[int, ...]:
    """The lags the model uses: the configured ones, or those of the dataset's frequency
    that its series are long enough for."""
    from rnncast.pipeline.core.series import seasonal_lags, usable_lags

    if config.lags is not None:
        return tuple(config.lags)
    if not metadata.get("freq"):
        return ()
    # Training sees a lag only within one lane segment: a long series is cut across lanes,
    # each piece starting from a zero state (and an empty lag memory), so the stretch a lag
    # must fit in is the shorter of the series and a lane (one daily series in 16 lanes of
    # 320 days never shows a 364-day lag in training, and anchoring on it at inference
    # made Chicago's validation MASE 8.5).
    train = metadata.get("splits", {}).get("train", {})
    lane = train.get("batches_per_stream", 0) * metadata.get("num_steps", 0) or math.inf
    lengths = [min(s["train_length"], lane) for s in metadata.get("series", {}).values()]
    return usable_lags(seasonal_lags(metadata["freq"]), lengths)


def model_anchor(
    anchor: str, lags: tuple[int, ...], baseline_mae: dict[str, float | None] | None
) -> tuple[str, tuple[int, ...]]:
    """The anchor the model uses and its lags, the anchor's season first.

    ``auto``: the baseline that fits the training data best, by the dataset job's in-sample
    scaled MAE of naive and of seasonal naive per lag (``baseline_mae`` in its metadata):
    the last value where naive is lowest (trending monthly series, weather), seasonal naive
    over the best lag otherwise (the week of hourly counts, the week of daily births). On the
    benchmark's validation origins it chose the better of the last value and seasonal naive
    on every dataset, and the daily weather demo's last value where a rule by frequency had
    chosen its (absent) weekly cycle (BENCHMARKS.md, issue 12). Datasets written before the
    measurement anchor on the last value. ``seasonal`` without lags falls back to ``last``.
    """
    from rnncast.pipeline.core.series import best_baseline_lag

    if anchor == "auto":
        errors = {
            int(lag): error
            for lag, error in (baseline_mae or {}).items()
            if int(lag) == 1 or int(lag) in lags
        }
        best = best_baseline_lag(errors)
        if best == 1:
            return "last", lags
        return "seasonal", (best, *(lag for lag in lags if lag != best))
    return ("last" if anchor == "seasonal" and not lags else anchor), lags


def build_model(
    config: TrainConfig, metadata: dict, interval_scale: list[float] | None = None
) -> RNNForecaster:
    from rnncast.model.forecaster import RNNForecaster

    anchor, lags = model_anchor(
        config.anchor, model_lags(config, metadata), metadata.get("baseline_mae")
    )
    model = RNNForecaster(
        cell_type=config.cell,
        num_layers=config.layers,
        units=config.units,
        dropout=config.dropout,
        horizon=metadata["horizon"],
        quantiles=config.quantiles,
        anchor=anchor,
        inputs=config.inputs,
        lags=lags,
        interval_scale=interval_scale,
        nonnegative=config.nonnegative == "auto" and bool(metadata.get("nonnegative")),
        name="rnncast_forecaster",
    )
    model.build((metadata["batch_size"], metadata["num_steps"], len(metadata["feature_names"]) + 1))
    return model


def chief_in_tf_config(tf_config: str | None) -> bool:
    """Whether the task ``TF_CONFIG`` describes is the chief of its cluster: the ``chief``
    task, or worker 0 when the cluster names no chief (TensorFlow's rule); a process without
    ``TF_CONFIG`` is a cluster of one."""
    if not tf_config:
        return True
    try:
        parsed = json.loads(tf_config)
        task = parsed.get("task") or {}
        kind, index = task.get("type"), int(task.get("index", 0))
    except (ValueError, TypeError, AttributeError) as err:
        raise TrainError(f"TF_CONFIG: not valid JSON with a task ({err}); see README") from err
    if kind == "chief":
        return True
    return kind == "worker" and index == 0 and "chief" not in (parsed.get("cluster") or {})
