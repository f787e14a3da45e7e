"""GPU check: the cuDNN kernels against the CPU kernels, then the train step's speed on a GPU.

1. Equality: rnncast's MaskedStackedRNN (LSTM and GRU, 2 layers) on the same weights and
   inputs on the CPU with the loop a CPU-only machine runs (``time_loop = "hoisted"``) and
   on the GPU with Keras' kernels (where Keras picks cuDNN), with rows of length 0, 1,
   T - 1 and T, from a carried (random) state and from a reset (zero) state: the largest
   difference of the outputs and of the final states, against a tolerance for float32
   kernels that sum in another order.
2. Timing: the train step of ``rnncast train`` against a plain Keras ``Sequential`` + ``fit``
   on the same tensors (benchmarks/bench_train.py), on the GPU.

Without a GPU it says so, checks the hoisted loop against Keras' CPU kernels (so the script
is known to run) and times on the CPU. Run by ``benchmarks/gpu_check.sh`` on a fresh GPU machine.

    python benchmarks/gpu_check.py [--batch-size 32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rnncast.model.rnn import MaskedStackedRNN  # noqa: E402

TOLERANCE = 1e-4  # float32 kernels summing in another order


def stack_outputs(cell: str, device: str, weights, inputs, state, lengths, time_loop: str):
    with tf.device(device):
        layer = MaskedStackedRNN(cell, num_layers=2, units=64)
        layer.time_loop = time_loop
        layer.build(inputs.shape)
        if weights is not None:
            layer.set_weights(weights)
        outputs, final = layer(inputs, initial_state=state, sequence_length=lengths)
        return layer.get_weights(), outputs.numpy(), [s.numpy() for s in final]


def check_equality(devices: list[str]) -> bool:
    rng = np.random.default_rng(0)
    B, T, F = 8, 32, 7
    inputs = tf.constant(rng.normal(size=(B, T, F)).astype(np.float32))
    lengths = tf.constant([0, 1, T - 1, T, T, 5, T, 0], tf.int32)
    passed = True
    for cell in ("lstm", "gru"):
        per_state = 4 if cell == "lstm" else 2
        carried = [tf.constant(rng.normal(size=(B, 64)).astype(np.float32))] * per_state
        for name, state in (("carried", carried), ("reset", None)):
            # The reference is what a CPU-only machine runs (rnncast's hoisted loop); the other
            # is Keras' own kernels on the last device (cuDNN on a GPU, else the CPU's).
            weights, cpu_out, cpu_state = stack_outputs(
                cell, "/CPU:0", None, inputs, state, lengths, "hoisted"
            )
            _, other_out, other_state = stack_outputs(
                cell, devices[-1], weights, inputs, state, lengths, "keras"
            )
            worst = max(
                float(np.max(np.abs(cpu_out - other_out))),
                *(float(np.max(np.abs(a - b))) for a, b in zip(cpu_state, other_state)),
            )
            # Outputs past a row's length must be exactly zero on both.
            past = np.arange(T)[None, :] >= lengths.numpy()[:, None]
            zeros = not np.any(other_out[past]) and not np.any(cpu_out[past])
            ok = worst <= TOLERANCE and zeros
            passed &= ok
            print(
                f"equality {cell} {name:7s} state, lengths 0/1/T-1/T: CPU (hoisted loop) vs "
                f"{devices[-1]} (Keras kernels) "
                f"max |diff| {worst:.2e} (tolerance {TOLERANCE:.0e}), zeros past length "
                f"{'yes' if zeros else 'NO'} -> {'ok' if ok else 'FAILED'}"
            )
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    gpus = tf.config.list_physical_devices("GPU")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, GPUs "
        f"{[tf.config.experimental.get_device_details(g).get('device_name', g.name) for g in gpus]}"
        f", tensorflow {tf.__version__}"
    )
    devices = ["/CPU:0"] + (["/GPU:0"] if gpus else [])
    if not gpus:
        print("no GPU: checking the CPU kernels against themselves and timing on the CPU")
    passed = check_equality(devices)

    import bench_train

    class Settings:
        layers, units, repeats = 3, 100, args.repeats

    tensors = bench_train.make_tensors(args.batches, args.batch_size, 64, 7, 24)
    steps = args.batches * args.batch_size * 64
    with tf.device(devices[-1]):
        for cell in ("gru", "lstm"):
            ours = bench_train.rnncast_epoch(cell, tensors, Settings)
            plain = bench_train.keras_epoch(cell, tensors, Settings)
            rounds = [
                (bench_train._timed(ours), bench_train._timed(plain))  # noqa: SLF001
                for _ in range(args.repeats)
            ]
            ratio = float(np.median([b / a for a, b in rounds]))
            print(
                f"timing {cell} on {devices[-1]}: rnncast "
                f"{steps / np.median([a for a, _ in rounds]):,.0f} timesteps/s, keras fit "
                f"{steps / np.median([b for _, b in rounds]):,.0f} timesteps/s, median ratio "
                f"{ratio:.2f} over {args.repeats} alternating rounds (B={args.batch_size}, T=64, "
                "3x100)"
            )
    print("gpu_check:", "PASSED" if passed else "FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
