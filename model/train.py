"""``rnncast train``: truncated-BPTT training over the dataset job's stateful streams.

Each epoch visits the training streams in a seeded random order. Within a stream, batches are
read in order and each lane's final state is carried into the next batch as a plain tensor
(so gradients stop at batch boundaries: truncated backpropagation through time); lanes whose
``reset`` flag is set start from zero. Validation carries state the same way through the
validation streams, whose first rows re-read each series' training tail to warm it up.
Checkpoints are written at every epoch end (see :mod:`model.checkpoint`); a killed run resumes
from the last complete one and, because every source of randomness is derived from
``(seed, epoch)``, reaches the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

import keras
import numpy as np
import tensorflow as tf

from rnncast.errors import TrainError
from rnncast.model import calibration, checkpoint
from rnncast.model.config import (
    CALIBRATION_FILE,
    CONFIG_FILE,
    DATASET_FILE,
    HISTORY_FILE,
    TrainConfig,
    build_model,
)
from rnncast.model.flags import build_parser, config_from_args
from rnncast.model.forecaster import (
    RNNForecaster,
    masked_loss_sums,
    model_inputs,
    reset_state,
)
from rnncast.model.rnn import MaskedStackedRNN, default_time_loop
from rnncast.pipeline.core.progress import Bar, bar_enabled
from rnncast.pipeline.io import commit
from rnncast.pipeline.io.locations import check_output_directory
from rnncast.pipeline.io.reader import StreamSplit, load_metadata
from rnncast.usage import parse_strictly


def passes_per_epoch(steps_per_pass: int, min_batches: int) -> int:
    """Passes over the training streams per epoch so that an epoch makes at least
    ``min_batches`` optimizer steps (1 where one pass already does)."""
    if steps_per_pass <= 0:
        return 1
    return max(1, math.ceil(min_batches / steps_per_pass))


def _reseed_dropout(model: keras.Model, seed: int, epoch: int) -> None:
    """Derive every dropout layer's random state from ``(seed, epoch)`` so an epoch replays
    identically after a resume."""
    for index, layer in enumerate(model._flatten_layers()):  # noqa: SLF001 - Keras layer walk
        if isinstance(layer, keras.layers.Dropout):
            layer.seed_generator.state.assign(np.array([seed * 1000 + epoch, index], np.int64))


class Trainer:
    """Owns the model, optimizer and compiled steps of one training run."""

    def __init__(self, config: TrainConfig, metadata: dict, strategy=None):
        self.config = config
        self.metadata = metadata
        # None: the default (single-device) strategy and the plain compiled steps. Otherwise
        # every batch's lanes are split across the replicas, each replica carries the state of
        # its own lanes, and gradients are summed across replicas (loss / global target count).
        self.strategy = strategy
        with (strategy or tf.distribute.get_strategy()).scope():
            self._build(config, metadata)
        if strategy is not None:
            replicas = strategy.num_replicas_in_sync
            if metadata["batch_size"] % replicas:
                raise TrainError(
                    f"batch size {metadata['batch_size']} is not divisible by {replicas} "
                    "replicas; rerun 'rnncast dataset' with a multiple of the replica count"
                )
            self._train_step = tf.function(self._distributed_train, reduce_retracing=True)
            self._eval_step = tf.function(self._distributed_eval, reduce_retracing=True)

    def _build(self, config: TrainConfig, metadata: dict) -> None:
        self.model = build_model(config, metadata)
        # The time loop by the lanes each device's step runs (see default_time_loop); an XLA
        # step keeps the default loop, the faster one there at every batch size measured.
        replicas = self.strategy.num_replicas_in_sync if self.strategy is not None else 1
        lanes = None if config.jit_compile else metadata["batch_size"] // replicas
        for layer in self.model._flatten_layers():  # noqa: SLF001 - Keras layer walk
            if isinstance(layer, MaskedStackedRNN):
                layer.time_loop = default_time_loop(config.cell, lanes)
        self.levels = tuple(sorted(config.quantiles))
        steps_per_pass = sum(f.get("batches", 0) for f in metadata["splits"]["train"]["files"])
        self.passes_per_epoch = passes_per_epoch(steps_per_pass, config.min_batches_per_epoch)
        self.steps_per_epoch = steps_per_pass * self.passes_per_epoch
        schedule = keras.optimizers.schedules.CosineDecay(
            config.learning_rate,
            decay_steps=max(1, config.epochs * self.steps_per_epoch),
            alpha=0.05,
        )
        self.optimizer = keras.optimizers.Adam(schedule, global_clipnorm=config.clip_norm)
        self.optimizer.build(self.model.trainable_variables)
        if config.jit_compile:
            self._stacks = [
                layer
                for layer in self.model._flatten_layers()  # noqa: SLF001 - Keras layer walk
                if isinstance(layer, MaskedStackedRNN)
            ]
            # XLA cannot compile the padded/unpadded graph branch around Keras' loops, so
            # each path is its own compiled step and run_split picks one per batch.
            self._xla_steps = {
                (train, padded): self._xla_step(train, padded)
                for train in (True, False)
                for padded in (True, False)
            }
        else:
            self._train_step = tf.function(self._train_step_impl, reduce_retracing=True)
            self._eval_step = tf.function(self._eval_step_impl, reduce_retracing=True)

    def _xla_step(self, train: bool, padded: bool):
        impl = self._train_step_impl if train else self._eval_step_impl
        path = "masked" if padded else "full"

        def step(batch, state):
            # Runs while tracing only: the path is baked into this step's graph.
            for stack in self._stacks:
                stack.padding_path = path
            try:
                return impl(batch, state)
            finally:
                for stack in self._stacks:
                    stack.padding_path = "branch"

        return tf.function(step, reduce_retracing=True, jit_compile=True)

    def step_for(self, batch, train: bool):
        """The compiled step for ``batch``: with XLA, the unmasked one when no lane is
        padded (resets need no mask: they act on the incoming state), else the masked one."""
        if not self.config.jit_compile:
            return self._train_step if train else self._eval_step
        lengths = batch["sequence_length"]
        padded = bool(np.any(np.asarray(lengths) < int(batch["inputs"].shape[1])))
        return self._xla_steps[(train, padded)]

    @property
    def variables(self) -> list:
        """Everything a checkpoint must hold, in a fixed order."""
        return list(self.model.variables) + list(self.optimizer.variables)

    def _forward(self, batch, state, training, lanes=None):
        state = reset_state(state, batch["reset"])
        x = model_inputs(batch["inputs"], batch["observed"])
        point, quantiles, new_state = self.model(
            x, state, batch["sequence_length"], training=training, lanes=lanes
        )
        total, count = masked_loss_sums(
            point,
            quantiles,
            batch["targets"],
            batch["target_mask"],
            self.levels,
            self.config.loss,
        )
        return total, count, new_state

    def _train_step_impl(self, batch, state):
        with tf.GradientTape() as tape:
            total, count, new_state = self._forward(batch, state, training=True)
            loss = total / tf.maximum(count, 1.0)
        gradients = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
        # The carried state is a value, not a path for gradients: truncated BPTT.
        return total, count, [tf.stop_gradient(s) for s in new_state]

    def _eval_step_impl(self, batch, state):
        return self._forward(batch, state, training=False)

    def _replica_train(self, batch, state):
        context = tf.distribute.get_replica_context()
        # This replica's lanes within the whole batch (see _lanes): dropout masks are drawn
        # for the whole batch and sliced, so N replicas train exactly as one device.
        share = tf.shape(batch["sequence_length"])[0]
        lanes = (context.replica_id_in_sync_group * share, context.num_replicas_in_sync * share)
        with tf.GradientTape() as tape:
            total, count, new_state = self._forward(batch, state, training=True, lanes=lanes)
            everywhere = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
            loss = total / tf.maximum(everywhere, 1.0)
        gradients = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
        return total, count, [tf.stop_gradient(s) for s in new_state]

    def _reduce(self, per_replica):
        total, count, state = per_replica
        reduce = self.strategy.reduce
        return (
            reduce(tf.distribute.ReduceOp.SUM, total, axis=None),
            reduce(tf.distribute.ReduceOp.SUM, count, axis=None),
            state,
        )

    def _distributed_train(self, batch, state):
        return self._reduce(self.strategy.run(self._replica_train, args=(batch, state)))

    def _distributed_eval(self, batch, state):
        return self._reduce(self.strategy.run(self._eval_step_impl, args=(batch, state)))

    def _lanes(self, values, size):
        """Split lane-major values (a dict of batch tensors, or a state list) over replicas."""
        replicas = self.strategy.num_replicas_in_sync
        share = size // replicas

        def local(context):
            start = context.replica_id_in_sync_group * share
            return tf.nest.map_structure(lambda v: v[start : start + share], values)

        return self.strategy.experimental_distribute_values_from_function(local)

    def run_split(
        self,
        dataset: tf.data.Dataset,
        train: bool,
        on_batch: Callable[[float, float], None] | None = None,
    ) -> tuple[float, int, int]:
        """One pass over ``dataset``: mean loss over valid targets, batches, time steps.
        ``on_batch(loss_sum, targets)`` is called after every batch (progress only)."""
        total, count, batches, timesteps = 0.0, 0.0, 0, 0
        state, state_size = None, None
        for batch in dataset:
            size = int(batch["sequence_length"].shape[0])
            batch = {k: batch[k] for k in _MODEL_KEYS}
            if state is None or size != state_size:
                state, state_size = self.model.zero_state(size), size
                if self.strategy is not None:
                    state = self._lanes(state, size)
            if self.strategy is not None:
                batch = self._lanes(batch, size)
            batch_total, batch_count, state = self.step_for(batch, train)(batch, state)
            batch_total, batch_count = float(batch_total), float(batch_count)
            total += batch_total
            count += batch_count
            batches += 1
            timesteps += size * self.metadata["num_steps"]
            if on_batch is not None:
                on_batch(batch_total, batch_count)
        return (total / count if count else math.nan), batches, timesteps


def carried_outputs(model: RNNForecaster, dataset: tf.data.Dataset):
    """``(batch, point, quantiles)`` per batch of ``dataset``, with each lane's state carried
    into the next batch and zeroed where ``reset`` is set, as in training."""
    state = None
    for batch in dataset:
        size = int(batch["sequence_length"].shape[0])
        if state is None or int(state[0].shape[0]) != size:
            state = model.zero_state(size)
        state = reset_state(state, batch["reset"])
        x = model_inputs(batch["inputs"], batch["observed"])
        point, quantiles, state = model(x, state, batch["sequence_length"])
        yield batch, point, quantiles


def evaluate_split(trainer: Trainer, dataset: tf.data.Dataset) -> dict:
    """Loss of the model and of the naive forecast (the last input value, for every horizon
    and quantile) over the valid targets, and the empirical coverage of the outermost
    quantile interval; state is carried through the streams as in training."""
    levels = trainer.levels
    sums = {"model": 0.0, "naive": 0.0, "count": 0.0, "covered": 0.0}
    for batch, point, quantiles in carried_outputs(trainer.model, dataset):
        targets, mask = batch["targets"], batch["target_mask"]
        model_total, count = masked_loss_sums(
            point, quantiles, targets, mask, levels, trainer.config.loss
        )
        last = tf.broadcast_to(batch["inputs"][:, :, :1], tf.shape(point))
        naive_total, _ = masked_loss_sums(
            last,
            tf.repeat(last[..., None], len(levels), axis=-1),
            targets,
            mask,
            levels,
            trainer.config.loss,
        )
        inside = (targets >= quantiles[..., 0]) & (targets <= quantiles[..., -1]) & mask
        sums["model"] += float(model_total)
        sums["naive"] += float(naive_total)
        sums["count"] += float(count)
        sums["covered"] += float(tf.reduce_sum(tf.cast(inside, tf.float32)))
    count = sums["count"] or math.nan
    return {
        "loss": sums["model"] / count,
        "naive_loss": sums["naive"] / count,
        "coverage": sums["covered"] / count,
        "nominal_coverage": levels[-1] - levels[0] if levels else math.nan,
        "targets": int(sums["count"]),
    }


_MODEL_KEYS = ("inputs", "observed", "targets", "target_mask", "sequence_length", "reset")


def make_strategy(distribution: str):
    """The ``tf.distribute`` strategy for ``--distribution`` (None: the default strategy).

    ``mirrored``: all local GPUs (or the CPU); ``multi-worker``: the cluster in ``TF_CONFIG``
    (every worker runs the same command; each reads the dataset and takes its lanes)."""
    if distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    if distribution == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return None


def train(
    config: TrainConfig, log=print, progress: str = "auto", stream: TextIO | None = None
) -> dict:
    """Train (or resume training) into ``config.model_dir``; return the training summary.

    The phases: open the model directory (:func:`open_model_dir`), build the trainer,
    restore or start the run (:func:`resume`), run the epochs (:func:`run_epoch`, each one
    committed by its checkpoint), then calibrate the intervals (:func:`calibrate_intervals`).

    In a multi-worker run every worker trains (the steps are collective), and only the chief
    (:attr:`TrainConfig.is_chief`) writes the model directory; the others write nothing.
    ``chief`` in the summary says which this process was.

    Progress goes to ``stream`` (default stderr), never to ``log``: with ``progress``
    ``auto`` (a terminal only) or ``always``, a per-batch bar with ETA and running loss;
    unless ``never``, one line before the first batch. It does not touch the numerics.
    """
    config.check()
    chief = config.is_chief
    stream = stream if stream is not None else sys.stderr
    bar_stream = stream if bar_enabled(progress, stream) else None
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)
    metadata = open_model_dir(config, write=chief)
    trainer = Trainer(config, metadata, make_strategy(config.distribution))
    model, passes = trainer.model, trainer.passes_per_epoch
    season = f" (season {model.lags[0]})" if model.anchor == "seasonal" else ""
    log(
        f"rnncast train: inputs {model.inputs}, lags {list(model.lags) or 'none'}, anchor "
        f"{model.anchor}{season}{', forecasts clipped at 0' if model.nonnegative else ''}; "
        f"{passes} pass(es) over {trainer.steps_per_epoch // passes} batches per epoch"
    )
    state, history = resume(trainer, config, log)
    checkpoints = os.path.join(config.model_dir, "checkpoints")
    best_dir = os.path.join(config.model_dir, "best")
    history_path = os.path.join(config.model_dir, HISTORY_FILE)
    writers = log_writers(config.model_dir) if chief else None
    has_validation = bool(metadata["splits"]["validation"]["files"])
    train_split = StreamSplit(config.data, "train")
    validation_split = StreamSplit(config.data, "validation") if has_validation else None

    if progress != "never" and state["epoch"] < config.epochs and not state["stopped"]:
        # The first epoch line can be a minute away (graph tracing, then a whole epoch).
        print(
            f"rnncast train: training from epoch {state['epoch'] + 1}, "
            f"{trainer.steps_per_epoch} batches per epoch (the first batch also builds the "
            "training step)",
            file=stream,
            flush=True,
        )
    for epoch in range(state["epoch"] + 1, config.epochs + 1):
        if state["stopped"]:
            break
        record, batches = run_epoch(
            trainer, config, epoch, train_split, validation_split, bar_stream
        )
        improved = state["best_val_loss"] is None or record["val_loss"] < state["best_val_loss"]
        if improved:
            state.update(best_val_loss=record["val_loss"], best_epoch=epoch, bad_epochs=0)
            if chief:
                checkpoint.save(best_dir, epoch, trainer.model.variables, {"epoch": epoch}, keep=1)
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        state["stopped"] = state["bad_epochs"] >= config.patience
        history.append(record)
        if chief:
            # The checkpoint is the commit point of the epoch; history follows it.
            checkpoint.save(checkpoints, epoch, trainer.variables, state)
            commit.write_json(history_path, history)
            write_scalars(writers, epoch, record)
        log(
            f"epoch {epoch}/{config.epochs}  train {record['train_loss']:.4f}  "
            f"val {record['val_loss']:.4f}  {batches} batches  "
            f"{record['timesteps_per_second']:,.0f} timesteps/s{'  *best*' if improved else ''}"
        )
        if state["stopped"]:
            log(f"rnncast train: early stop, no improvement for {config.patience} epochs")
    if chief and has_validation and config.calibration == "conformal" and state["best_epoch"]:
        checkpoint.restore(best_dir, trainer.model.variables)
        result = calibrate_intervals(trainer, validation_split.batches())
        commit.write_json(os.path.join(config.model_dir, CALIBRATION_FILE), result)
        log(
            f"rnncast train: 80 % interval calibrated on {result['targets']:,} validation "
            f"targets: coverage {result['coverage_before']:.3f} -> {result['coverage_after']:.3f}"
        )
    return {"state": state, "history": history, "chief": chief}


# TensorBoard runs (``MODEL_DIR/logs/<run>``) and, per run, each tag with the history key it
# logs: ``loss`` in both runs, so TensorBoard draws training and validation in one chart.
LOG_RUNS = {
    "train": {
        "loss": "train_loss",
        "timesteps_per_second": "timesteps_per_second",
        "learning_rate": "learning_rate",
    },
    "validation": {"loss": "val_loss"},
}


def log_writers(model_dir: str) -> dict:
    """One TensorBoard summary writer per run of :data:`LOG_RUNS`, under ``model_dir/logs``."""
    return {
        run: tf.summary.create_file_writer(os.path.join(model_dir, "logs", run)) for run in LOG_RUNS
    }


def write_scalars(writers: dict, epoch: int, record: dict) -> None:
    """An epoch's history ``record`` as TensorBoard scalars at step ``epoch``, each run's tags
    in its own writer (a missing value is logged as 0)."""
    for run, tags in LOG_RUNS.items():
        with writers[run].as_default(step=epoch):
            for tag, key in tags.items():
                tf.summary.scalar(tag, record[key] or 0.0)
        writers[run].flush()


def open_model_dir(config: TrainConfig, write: bool = True) -> dict:
    """Check the dataset and the model directory, and record the run's settings there (or
    check them against those of the run being resumed); returns the dataset's metadata.
    ``write=False`` (a multi-worker run's other workers): check only, write nothing."""
    metadata = load_metadata(config.data)
    if metadata["layout"] != "stateful":
        raise TrainError(
            f"{config.data}: rnncast train needs the stateful layout; rerun 'rnncast dataset' "
            "without --layout windows"
        )
    if write:
        check_output_directory(config.model_dir, "--model-dir")
        os.makedirs(config.model_dir, exist_ok=True)
    settings = {
        "train": config.model_settings(),
        "dataset": {"run_id": metadata["run_id"], "fingerprint": metadata["input"]["fingerprint"]},
    }
    config_path = os.path.join(config.model_dir, CONFIG_FILE)
    if os.path.exists(config_path):
        previous = commit.read_json(
            config_path, f"remove {config.model_dir} (or use a new --model-dir) to start afresh"
        )
        if previous != settings:
            raise TrainError(
                f"{config.model_dir}: holds a run with other settings or data ({config_path}); "
                "use a new --model-dir or the same flags and dataset to resume"
            )
    elif write:
        commit.write_json(config_path, settings)
        # The export needs the dataset's contract (features, horizon, scaling) without the data.
        commit.write_json(os.path.join(config.model_dir, DATASET_FILE), metadata)
    return metadata


def resume(trainer: Trainer, config: TrainConfig, log=print) -> tuple[dict, list[dict]]:
    """The run's state and history: restored from the latest intact checkpoint, or a new
    run's (initialised from ``config.init_from`` when given)."""
    checkpoints = os.path.join(config.model_dir, "checkpoints")
    try:
        state = checkpoint.restore(checkpoints, trainer.variables, warn=log)
    except checkpoint.CheckpointError as err:
        raise TrainError(str(err)) from err
    if state is None:
        state = {
            "epoch": 0,
            "best_val_loss": None,
            "best_epoch": None,
            "bad_epochs": 0,
            "stopped": False,
        }
        if config.init_from:
            _initialise_from(trainer, config.init_from)
            log(f"rnncast train: initialised from {config.init_from} (fine-tuning)")
    history_path = os.path.join(config.model_dir, HISTORY_FILE)
    history = []
    if os.path.exists(history_path) and state["epoch"]:
        try:
            with open(history_path, encoding="utf-8") as handle:
                history = [h for h in json.load(handle) if h["epoch"] <= state["epoch"]]
        except (ValueError, TypeError, KeyError) as err:
            # Only a record of past epochs (the checkpoint holds the training state).
            log(f"rnncast train: {history_path}: unreadable ({err}); starting a new history")
    if state["epoch"]:
        log(f"rnncast train: resuming after epoch {state['epoch']} from {checkpoints}")
    return state, history


def run_epoch(
    trainer: Trainer,
    config: TrainConfig,
    epoch: int,
    train_split: StreamSplit,
    validation_split: StreamSplit | None,
    bar_stream: TextIO | None = None,
) -> tuple[dict, int]:
    """One epoch: its passes over the training streams, then the validation loss (the
    training loss when there is no validation split). Returns the epoch's history record
    and the number of batches it trained on. With ``bar_stream``, a bar there: batches
    done, ETA and the mean training loss so far."""
    _reseed_dropout(trainer.model, config.seed, epoch)
    started = time.perf_counter()
    losses, batches, timesteps = [], 0, 0
    bar, on_batch = None, None
    if bar_stream is not None:
        bar = Bar(trainer.steps_per_epoch, f"epoch {epoch}/{config.epochs}", bar_stream, True)
        running = {"batches": 0, "total": 0.0, "count": 0.0}

        def on_batch(batch_total: float, batch_count: float) -> None:
            running["batches"] += 1
            running["total"] += batch_total
            running["count"] += batch_count
            loss = running["total"] / running["count"] if running["count"] else math.nan
            bar.update(running["batches"], f"loss {loss:.4f}")

    for repeat in range(trainer.passes_per_epoch):
        # Every pass visits the streams in its own seeded order (a resume replays it); the
        # first pass keeps the key of one-pass epochs.
        key = [config.seed, epoch] if repeat == 0 else [config.seed, epoch, repeat]
        order = np.random.default_rng(key)
        pass_loss, pass_batches, pass_steps = trainer.run_split(
            train_split.batches(order.permutation(train_split.num_streams).tolist()),
            train=True,
            on_batch=on_batch,
        )
        losses.append(pass_loss)
        batches += pass_batches
        timesteps += pass_steps
    train_loss = float(np.mean(losses))
    elapsed = time.perf_counter() - started
    if bar is not None and validation_split is not None:
        bar.update(batches, f"loss {train_loss:.4f}, validating")
    val_loss = (
        trainer.run_split(validation_split.batches(), train=False)[0]
        if validation_split is not None
        else train_loss
    )
    if bar is not None:
        bar.close()
    record = {
        "epoch": epoch,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "seconds": elapsed,
        "timesteps_per_second": timesteps / elapsed if elapsed else None,
        "learning_rate": float(trainer.optimizer.learning_rate),
    }
    return record, batches


def calibrate_intervals(trainer: Trainer, dataset: tf.data.Dataset) -> dict:
    """The per-horizon-step spread factors that make the outermost quantile interval of the
    trainer's (best) model cover its nominal share of the validation targets, with the
    coverage before and after (state carried through the streams as in training)."""
    model, levels = trainer.model, trainer.levels
    nominal = levels[-1] - levels[0]
    scores, masks = [], []
    for batch, point, quantiles in carried_outputs(model, dataset):
        center = model.quantile_center(point, quantiles)[..., 0]
        scores.append(
            calibration.conformity_scores(
                center.numpy(),
                quantiles[..., 0].numpy(),
                quantiles[..., -1].numpy(),
                batch["targets"].numpy(),
            ).reshape(-1, model.horizon)
        )
        masks.append(batch["target_mask"].numpy().reshape(-1, model.horizon))
    score, mask = np.concatenate(scores), np.concatenate(masks)
    factors = calibration.interval_scale(score, mask, nominal)
    return {
        "method": "conformal",
        "interval_scale": factors,
        "nominal_coverage": nominal,
        "coverage_before": float(np.mean(score[mask] <= 1.0)),
        "coverage_after": float(np.mean((score <= np.asarray(factors)[None, :])[mask])),
        "targets": int(mask.sum()),
    }


def _initialise_from(trainer: Trainer, model_dir: str) -> None:
    """Start from the best weights of another run (same architecture and features)."""
    source = os.path.join(model_dir, "best")
    try:
        restored = checkpoint.restore(source, trainer.model.variables)
    except ValueError as err:  # a different shape or variable count
        raise TrainError(
            f"--init-from {model_dir}: its weights do not fit this model ({err}); use a model "
            "directory trained with the same --cell, --layers, --units and features"
        ) from err
    if restored is None:
        raise TrainError(
            f"--init-from {model_dir}: no best checkpoint in {source}; pass a model directory "
            "of a finished 'rnncast train' run"
        )


def main(argv: list[str]) -> int:
    args = parse_strictly(build_parser(), argv)
    config = config_from_args(args, args.data, args.model_dir)
    summary = train(config, progress=args.progress)
    state = summary["state"]
    if not summary["chief"]:
        print(f"rnncast train: done; the chief writes {config.model_dir}", file=sys.stdout)
        return 0
    print(
        f"rnncast train: best val loss {state['best_val_loss']:.4f} at epoch "
        f"{state['best_epoch']}; model dir {config.model_dir}",
        file=sys.stdout,
    )
    return 0
