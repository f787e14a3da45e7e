"""The model the forecast and stream jobs run: rnncast's own network, weights loaded as data.

An export's SavedModel is a program (its graph runs whatever ops it holds), so the jobs never
load it. :func:`load_model` reads ``rnncast_model.json`` (:func:`read_model_info`),
builds ``RNNForecaster`` from rnncast's code and the config there, reads ``weights.npz`` with
``allow_pickle=False``, checks the arrays against the built model's variables (count, shapes,
dtypes), recomputes the weights fingerprint and refuses the export when it differs from the
one in ``rnncast_model.json``. :meth:`LoadedModel.step` has the contract of the SavedModel's
``step`` signature and runs the same code (``rnncast.model.inference.step_function``).
"""

from __future__ import annotations

import json
import sys

import numpy as np
from apache_beam.io.filesystems import FileSystems

from rnncast.errors import ModelError
from rnncast.pipeline.core.forecasting import MODEL_FILE, REEXPORT, ModelInfo

EXPORT = "export"  # MODEL_DIR/export, where rnncast train and rnncast export write


def resolve_export(model: str, flag: str | None = "--model") -> str:
    """The export ``model`` names: ``model`` itself when it holds ``rnncast_model.json``,
    ``MODEL_DIR/export`` when ``model`` is a model directory with an export (said in one
    stderr line naming ``flag``; None: quietly), else ``model`` unchanged (then
    :func:`read_model_info` refuses it)."""
    if not model or FileSystems.exists(FileSystems.join(model, MODEL_FILE)):
        return model
    nested = FileSystems.join(model.rstrip("/"), EXPORT)
    if not FileSystems.exists(FileSystems.join(nested, MODEL_FILE)):
        return model
    if flag:
        print(
            f"rnncast: {flag} {model} is a model directory; using its export {nested}",
            file=sys.stderr,
        )
    return nested


def read_model_info(export_dir: str) -> ModelInfo:
    """Read and check ``EXPORT_DIR/rnncast_model.json`` (ModelError naming the file)."""
    path = FileSystems.join(export_dir, MODEL_FILE)
    if not FileSystems.exists(path):
        raise ModelError(
            f"{export_dir}: not an rnncast export or model directory (no {MODEL_FILE} in it "
            f"or in {EXPORT}/); pass MODEL_DIR or MODEL_DIR/{EXPORT} written by 'rnncast "
            "train' or 'rnncast export'"
        )
    try:
        with FileSystems.open(path) as handle:
            info = json.loads(handle.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ModelError(f"{path}: corrupt JSON ({err}); {REEXPORT}") from err
    return ModelInfo.from_json(info, export_dir, path)


# Calls of at most this many lane-steps (lanes x steps) run the numpy step
# (``rnncast.model.numpy_step``): TensorFlow's fixed cost per call, about 0.6 ms on 2 CPU cores,
# is most of a small call's cost, and a stream's firings are small calls (a shard's due
# series, one new point each). On 2 cores numpy was 1.6-10.5x faster up to 4,096 lane-steps for
# 2x32, 2x64 and 2x128 GRU and 2x64 LSTM models, and close at 256 x 64 (1.05-1.29x), where
# TensorFlow stays (``benchmarks/bench_stream.py --step-calls``; BENCHMARKS.md).
NUMPY_MAX_LANE_STEPS = 4096


class LoadedModel:
    """An export's network, ready to run: ``step(inputs, observed, sequence_length, loc,
    scale, state) -> {"point", "quantiles", "state"}`` (numpy in, numpy out).

    ``jit_compile``: the step is compiled with XLA, one program per padded input shape (about
    a second each, the first time a shape is seen). On a CPU it runs a wide batch about 2x
    faster (``benchmarks/bench_stream.py``); the values agree with the plain step to float32
    round-off, not bit for bit.

    ``numpy_max_lane_steps``: without ``jit_compile``, calls of at most that many lanes x
    steps run the same math in numpy (:class:`rnncast.model.numpy_step.NumpyStep`, on the
    same weights), larger ones TensorFlow; the values agree to float32 round-off. 0: every
    call runs TensorFlow. With ``jit_compile`` every call runs XLA, as asked."""

    def __init__(
        self,
        info: ModelInfo,
        jit_compile: bool = False,
        numpy_max_lane_steps: int = NUMPY_MAX_LANE_STEPS,
    ):
        from rnncast.model import checkpoint, inference
        from rnncast.model.forecaster import RNNForecaster
        from rnncast.model.numpy_step import NumpyStep

        self.info = info
        weights = FileSystems.join(info.path, inference.WEIGHTS_FILE)
        if not FileSystems.exists(weights):
            raise ModelError(
                f"{weights}: not found; the export was written by an older rnncast, whose jobs "
                f"ran its SavedModel; {REEXPORT}"
            )
        config = FileSystems.join(info.path, MODEL_FILE)
        num_features = len(info.feature_names)
        try:
            model = RNNForecaster.from_config(info.network)
            model.build((1, info.num_steps, num_features + 1))
        except (TypeError, ValueError, KeyError) as err:
            raise ModelError(f"{config}: 'model' cannot be built ({err}); {REEXPORT}") from err
        if (tuple(model.state_size), model.horizon, model.quantiles) != (
            info.state_size,
            info.horizon,
            tuple(sorted(info.quantiles)),
        ):
            raise ModelError(
                f"{config}: 'model' disagrees with state_size, horizon or quantiles; {REEXPORT}"
            )
        with FileSystems.open(weights) as handle:
            data = handle.read()
        try:
            checkpoint.assign(checkpoint.read_npz(data), model.variables)
        except ValueError as err:
            raise ModelError(f"{weights}: {err}; {REEXPORT}") from err
        fingerprint = inference.weights_fingerprint(model.variables)
        if fingerprint != info.fingerprint:
            raise ModelError(
                f"{weights}: weights fingerprint {fingerprint} does not match {config}'s "
                f"{info.fingerprint}; {REEXPORT}"
            )
        self.fingerprint = fingerprint
        self.network = model  # the built RNNForecaster, weights assigned
        self.numpy_max_lane_steps = 0 if jit_compile else int(numpy_max_lane_steps)
        self.jit_compile = jit_compile
        # XLA compiles one program per input shape, so its calls are padded to buckets
        # (powers of two, see :func:`bucket`).
        self._tensorflow_step = inference.CompiledStep(model, num_features, jit_compile)
        self._numpy_step = NumpyStep.from_model(model) if self.numpy_max_lane_steps else None

    def step(self, inputs, observed, sequence_length, loc, scale, state) -> dict[str, np.ndarray]:
        args = [inputs, observed, sequence_length, loc, scale, state]
        lanes, width = np.shape(inputs)[:2]
        if lanes * width <= self.numpy_max_lane_steps:
            return self._numpy_step(*args)
        if self.jit_compile:
            args = _pad_to_buckets(args, bucket(lanes), bucket(width, self.info.num_steps))
        out = self._tensorflow_step(*args)
        if self.jit_compile:
            out = {
                "point": out["point"][:lanes, :width],
                "quantiles": out["quantiles"][:lanes, :width],
                "state": out["state"][:, :lanes],
            }
        return out


def bucket(size: int, cap: int | None = None) -> int:
    """The padded size of a dimension under XLA: the next power of two, at most ``cap``
    unless ``size`` is larger (so a stream's calls, 1..256 lanes of one step, compile at
    most 9 programs, and a batch job's few more)."""
    padded = 1 << max(int(size) - 1, 0).bit_length()
    return max(min(padded, cap), int(size)) if cap is not None else padded


def _pad_to_buckets(args: list, lanes: int, width: int) -> list:
    """``step``'s arguments padded to ``lanes`` rows and ``width`` steps: padded lanes have
    length 0 (their state and outputs are discarded), loc 0 and scale 1 (no division by 0);
    padded steps lie past every row's length (the masked path zeroes them)."""
    inputs, observed, sequence_length, loc, scale, state = (np.asarray(a) for a in args)
    rows, steps = lanes - inputs.shape[0], width - inputs.shape[1]
    if rows == 0 and steps == 0:
        return args
    return [
        np.pad(inputs, ((0, rows), (0, steps), (0, 0))),
        np.pad(observed, ((0, rows), (0, steps))),
        np.pad(sequence_length, (0, rows)),
        np.pad(loc, (0, rows)),
        np.pad(scale, (0, rows), constant_values=1.0),
        np.pad(state, ((0, 0), (0, rows), (0, 0))),
    ]


def load_model(
    export_dir: str, jit_compile: bool = False, numpy_max_lane_steps: int = NUMPY_MAX_LANE_STEPS
) -> LoadedModel:
    """The checked network of ``export_dir`` (ModelError naming the file and the fix);
    ``jit_compile``: run the step compiled with XLA; ``numpy_max_lane_steps``: the largest
    call run in numpy (see :class:`LoadedModel`)."""
    return LoadedModel(read_model_info(export_dir), jit_compile, numpy_max_lane_steps)


def worker_model(model: ModelInfo, jit_compile: bool = False) -> LoadedModel:
    """Load ``model`` in a worker; refuse an export that changed since the job checked it."""
    loaded = load_model(model.path, jit_compile)
    if loaded.fingerprint != model.fingerprint:
        raise ModelError(
            f"{model.path}: the export changed while the job ran (fingerprint "
            f"{loaded.fingerprint}, expected {model.fingerprint}); rerun the job"
        )
    return loaded
