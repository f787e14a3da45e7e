"""Benchmark: rnncast's training step against a plain Keras ``Sequential`` + ``model.fit``.

Same shapes and tensors for all (default T=64, 3 layers x 100 units, GRU and LSTM, at B=32
and B=256 lanes):
  (a) rnncast's Trainer step: exact sequence_length masking, per-lane reset, state carried
      from batch to batch, masked point + pinball loss, gradient clipping;
  (b) the same step compiled with XLA (``rnncast train --jit-compile``);
  (c) keras.Sequential([GRU|LSTM x 3, Dense]) compiled with Adam and fitted with model.fit
      (Keras' default ``jit_compile="auto"``, which is no XLA on a CPU-only machine).
The three alternate round by round; each ratio is the median over the rounds of the
per-round ratio. Also prints the share of the matmul roofline each reaches (the step's matmul
FLOPs per second over a large float32 matmul's, timed in the same run), and the input
pipeline's read rate (rnncast.pipeline.io.reader.make_dataset over a dataset-job output of
the same T and B=32) against the training rate (the reader must not be the bottleneck).

    python benchmarks/bench_train.py [--cells gru,lstm] [--batch-sizes 32,256] [--repeats 9]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rnncast.model.config import TrainConfig
from rnncast.model.rnn import default_time_loop
from rnncast.model.train import Trainer


def make_tensors(batches, B, T, F, H, seed=0):
    rng = np.random.default_rng(seed)
    lengths = np.full((batches, B), T, np.int32)
    lengths[-1, : B // 4] = rng.integers(0, T, B // 4)  # a stream's last, partly padded rows
    return {
        "inputs": rng.normal(size=(batches, B, T, F)).astype(np.float32),
        "observed": np.ones((batches, B, T), bool),
        "targets": rng.normal(size=(batches, B, T, H)).astype(np.float32),
        "target_mask": np.ones((batches, B, T, H), bool),
        "sequence_length": lengths,
        "reset": np.eye(1, batches, 0, dtype=bool).T.repeat(B, axis=1),
    }


def rnncast_epoch(cell, tensors, args, jit_compile=False, time_loop=None):
    """A callable running one pass of rnncast's train step over ``tensors`` (warmed up);
    ``time_loop``: run the layers through that loop (``model.rnn.TIME_LOOPS``) instead of the
    machine's default."""
    batches, B, T, F = tensors["inputs"].shape
    H = tensors["targets"].shape[-1]
    metadata = {
        "horizon": H,
        "batch_size": B,
        "num_steps": T,
        "feature_names": [f"f{i}" for i in range(F)],
        "splits": {"train": {"files": [{"batches": batches}]}},
    }
    config = TrainConfig(
        data="",
        model_dir="",
        cell=cell,
        layers=args.layers,
        units=args.units,
        dropout=0.0,
        epochs=args.repeats + 1,
        jit_compile=jit_compile,
    )
    trainer = Trainer(config, metadata)
    if time_loop is not None:
        trainer.model.rnn.time_loop = time_loop  # before the step is first traced
    batch_list = [{k: tf.constant(v[i]) for k, v in tensors.items()} for i in range(batches)]

    def epoch():
        state = trainer.model.zero_state(B)
        for batch in batch_list:
            # The very step rnncast train runs (with XLA: chosen per batch by its padding).
            _, _, state = trainer.step_for(batch, train=True)(batch, state)
        float(state[0][0, 0])

    epoch()  # trace and warm up
    return epoch


def keras_epoch(cell, tensors, args):
    """A callable running one ``model.fit`` epoch of the plain Keras model (warmed up)."""
    batches, B, T, F = tensors["inputs"].shape
    H = tensors["targets"].shape[-1]
    layer = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM}[cell]
    model = keras.Sequential(
        [keras.Input((T, F + 1))]
        + [layer(args.units, return_sequences=True) for _ in range(args.layers)]
        + [keras.layers.Dense(H * 4)]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=1.0), loss="mae")
    x = np.concatenate(
        [tensors["inputs"], tensors["observed"][..., None].astype(np.float32)], axis=-1
    ).reshape(batches * B, T, F + 1)
    y = np.repeat(tensors["targets"], 4, axis=-1).reshape(batches * B, T, H * 4)
    model.fit(x, y, batch_size=B, epochs=1, shuffle=False, verbose=0)  # trace and warm up

    def epoch():
        model.fit(x, y, batch_size=B, epochs=1, shuffle=False, verbose=0)

    return epoch


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def reader_rate(args) -> float:
    from rnncast.pipeline.core import synthetic
    from rnncast.pipeline.io.reader import make_dataset
    from rnncast.pipeline.jobs import dataset as dataset_job

    with tempfile.TemporaryDirectory() as tmp:
        frame = synthetic.generate(64, 3000, 5000, seed=3)
        synthetic.write(frame, os.path.join(tmp, "s.parquet"))
        dataset_job.run(
            [
                "--input",
                os.path.join(tmp, "s.parquet"),
                "--output",
                os.path.join(tmp, "d"),
                "--num-steps",
                "64",
                "--batch-size",
                "32",
                "--horizon",
                "24",
            ]
        )
        data = os.path.join(tmp, "d")
        list(make_dataset(data, "train", verify=False))  # warm caches

        def read():
            for batch in make_dataset(data, "train", verify=False):
                read.steps += int(batch["inputs"].shape[0] * batch["inputs"].shape[1])

        read.steps = 0
        elapsed = _timed(read)
        return read.steps / elapsed


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a large float32 matmul: the roofline of a matmul-bound step here."""
    a = tf.random.normal((n, n))
    matmul = tf.function(lambda x: tf.matmul(x, x))
    float(tf.reduce_sum(matmul(a)))  # trace and warm up
    start = time.perf_counter()
    for _ in range(repeats):
        out = matmul(a)
    float(tf.reduce_sum(out))
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def step_flops_per_timestep(cell: str, args) -> float:
    """Matmul FLOPs of one lane-timestep of a train step: forward (input and recurrent
    projections of every layer, and the output head) and backward (twice the forward)."""
    gates = {"gru": 3, "lstm": 4}[cell]
    forward, width = 0, args.features + 1
    for _ in range(args.layers):
        forward += 2 * gates * args.units * (width + args.units)
        width = args.units
    forward += 2 * args.units * args.horizon * 4  # point + 3 quantiles per horizon step
    return 3.0 * forward


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cells", default="gru,lstm")
    parser.add_argument("--batch-sizes", default="32,256")
    parser.add_argument("--num-steps", type=int, default=64)
    parser.add_argument("--features", type=int, default=7)
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument(
        "--batches", type=int, default=20, help="Batches per round at B=32 (fewer at larger B)."
    )
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--skip-reader", action="store_true")
    parser.add_argument(
        "--compare-loops",
        action="store_true",
        help="Also time the plain step with each time loop (time_loop='hoisted' and 'keras') "
        "in the same rounds, and print the hoisted loop's speed-up and the loop the default "
        "picks at that B (model.rnn.default_time_loop).",
    )
    args = parser.parse_args()
    devices = [d.device_type for d in tf.config.list_physical_devices()]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, devices {devices}, "
        f"tensorflow {tf.__version__}, keras {keras.__version__}"
    )
    peak = matmul_peak()
    print(f"matmul roofline: {peak / 1e9:.1f} GFLOP/s (2048x2048 float32, tf.matmul)")
    print()
    print(
        "| B | cell | rnncast | rnncast XLA | Keras fit | rnncast / Keras | XLA / Keras "
        "| roofline share (rnncast, XLA, Keras) |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    fastest_training = None
    loops: list[str] = []
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        args.batch_size = batch_size
        # About the same timesteps per round at every B.
        batches = max(2, args.batches * 32 // batch_size)
        tensors = make_tensors(batches, batch_size, args.num_steps, args.features, args.horizon)
        steps = batches * batch_size * args.num_steps
        for cell in args.cells.split(","):
            runs = {
                "rnncast": rnncast_epoch(cell, tensors, args),
                "xla": rnncast_epoch(cell, tensors, args, jit_compile=True),
                "keras": keras_epoch(cell, tensors, args),
            }
            if args.compare_loops:
                runs["hoisted_loop"] = rnncast_epoch(cell, tensors, args, time_loop="hoisted")
                runs["keras_loop"] = rnncast_epoch(cell, tensors, args, time_loop="keras")
            # Alternate the three so drifts of a shared 2-core machine hit all alike.
            rounds = [{k: _timed(fn) for k, fn in runs.items()} for _ in range(args.repeats)]
            rate = {k: steps / np.median([r[k] for r in rounds]) for k in runs}
            ratio = {
                k: float(np.median([r["keras"] / r[k] for r in rounds])) for k in ("rnncast", "xla")
            }
            flops = step_flops_per_timestep(cell, args)
            share = ", ".join(f"{rate[k] * flops / peak:.1%}" for k in ("rnncast", "xla", "keras"))
            if batch_size == 32:
                fastest_training = max(rate["rnncast"], rate["xla"], fastest_training or 0)
            print(
                f"| {batch_size} | {cell} | {rate['rnncast']:,.0f} | {rate['xla']:,.0f} | "
                f"{rate['keras']:,.0f} | {ratio['rnncast']:.2f} | {ratio['xla']:.2f} | "
                f"{share} |",
                flush=True,
            )
            if args.compare_loops:
                chosen = default_time_loop(cell, batch_size)
                speedup = np.median([r["keras_loop"] / r["hoisted_loop"] for r in rounds])
                loops.append(
                    f"| {batch_size} | {cell} | {rate['hoisted_loop']:,.0f} | "
                    f"{rate['keras_loop']:,.0f} | {speedup:.2f} | {chosen} |"
                )
    print(
        f"\n(timesteps/s, median of {args.repeats} alternating rounds of ~{steps:,} "
        "lane-timesteps; ratios: median per-round speed-up over Keras fit)"
    )
    if loops:
        print("\nplain step, the hoisted time loop against Keras' own loop (same rounds):")
        print("| B | cell | hoisted loop | Keras loop | hoisted / Keras loop | default here |")
        print("| ---: | --- | ---: | ---: | ---: | --- |")
        print("\n".join(loops))
    if args.skip_reader or fastest_training is None:  # the reader is compared at B=32
        return
    rate = reader_rate(args)
    print(
        f"reader: {rate:,.0f} timesteps/s = {rate / fastest_training:.1f}x the fastest "
        "training rate at B=32 above (must be > 1)"
    )


if __name__ == "__main__":
    main()
