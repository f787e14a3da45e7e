"""``rnncast evaluate``'s settings: its flags (the dataset job's and training's own option
classes next to the backtest's) and :class:`EvaluateConfig`."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING

from rnncast.errors import JobArgumentError
from rnncast.pipeline.beam import flags
from rnncast.pipeline.core.choices import AUTO_CLASSICAL, CLASSICAL_MODELS
from rnncast.usage import HelpFormatter, mark_required

if TYPE_CHECKING:  # types only: the model package imports TensorFlow
    from rnncast.model.config import TrainConfig
    from rnncast.pipeline.jobs.dataset import DatasetConfig

DESCRIPTION = (
    "Rolling-origin backtest: for each origin, train (or reuse with --model) a model only on "
    "the data up to the origin, forecast H steps with the forecast job, and score it with "
    "naive, seasonal naive and (when statsforecast is installed) AutoETS/AutoTheta on the "
    "same origins: MASE, sMAPE, scaled pinball loss, weighted quantile loss and interval "
    "coverage, per series and overall, with a Markdown/HTML summary and PNG plots."
)


# Flags of rnncast train that evaluate refuses (not listed in its help): why, and what to do.
REFUSED = {
    "--init-from": "could carry data from after the origins into the backtest; use "
    "--warm-start (each refit starts from the previous origin's model) or --model",
}


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``rnncast evaluate`` (what it does not know are Beam options)."""
    from rnncast.model.flags import add_training_arguments

    parser = argparse.ArgumentParser(
        prog="rnncast evaluate",
        allow_abbrev=False,
        description=DESCRIPTION,
        epilog="Other flags are Beam pipeline options for the dataset and forecast jobs "
        "(e.g. --runner, --direct_running_mode).",
        formatter_class=HelpFormatter,
        # --seed is both the dataset job's and training's: one flag seeds both.
        conflict_handler="resolve",
    )
    g = parser.add_argument_group("backtest")
    g.add_argument(
        "--origins",
        type=int,
        default=None,
        help="K: number of origins (default 3, or as many as --origin-every allows while the "
        "oldest origin keeps at least half the data as history).",
    )
    g.add_argument(
        "--origin-every",
        type=int,
        default=None,
        help="N: steps between origins (default H: test windows do not overlap).",
    )
    g.add_argument(
        "--season",
        type=int,
        default=None,
        help="m: season of the seasonal naive baseline and of MASE's scale (default from the "
        "frequency: 24 for hourly, 7 for daily, ...).",
    )
    g.add_argument(
        "--refit-every",
        type=int,
        default=1,
        help="Train a new model at every R-th origin (1: at each); the origins in between "
        "reuse the latest model, which only saw data before an earlier origin.",
    )
    g.add_argument(
        "--warm-start",
        action="store_true",
        help="Fine-tune: each refit after the first starts from the previous refit's weights "
        "(trained on data before the previous origin) instead of a random initialisation.",
    )
    g.add_argument(
        "--model",
        default=None,
        help="Reuse this model (MODEL_DIR or MODEL_DIR/export) at every origin instead of "
        "training. The backtest is leak-free only if it was trained on data before the first "
        "origin.",
    )
    g.add_argument(
        "--classical",
        default="auto",
        help="Classical baselines from statsforecast: 'auto' (AutoETS,AutoTheta when the "
        "'classical' extra is installed, and MSTL when a season of --mstl-seasons is longer "
        "than 24), 'none', or a comma-separated list of "
        f"{', '.join(CLASSICAL_MODELS)}.",
    )
    g.add_argument(
        "--mstl-seasons",
        default=None,
        help="Comma-separated seasons of the MSTL baseline, e.g. 24,168 for hourly data with "
        "daily and weekly cycles (default: the season m alone).",
    )
    g.add_argument(
        "--plot-series", type=int, default=4, help="Series plotted (chosen by sorted id)."
    )
    # The dataset job's own flags (and the input/output/horizon every job shares).
    flags.DATASET.add_to(parser)
    actions = parser._option_string_actions
    actions["--output"].help = "Directory for the metrics, forecasts, summary and plots."
    actions["--horizon"].help = (
        f"H: steps ahead forecast and scored at each origin (default: the --model export's "
        f"horizon, else {DEFAULT_HORIZON})."
    )
    mark_required(parser, ["--input", "--output"])
    t = parser.add_argument_group("model and training (as in rnncast train)")
    # No --init-from: weights from after the origins would leak into the backtest.
    add_training_arguments(t, fine_tuning=False)
    return parser


def parse_mstl_seasons(text: str | None) -> tuple[int, ...]:
    if text is None:
        return ()
    try:
        seasons = tuple(int(m) for m in text.split(",") if m.strip())
    except ValueError:
        seasons = ()
    if not seasons or min(seasons) < 1:
        raise JobArgumentError(
            f"rnncast evaluate: --mstl-seasons {text!r}: give positive integers, e.g. 24,168"
        )
    return seasons


def classical_models(choice: str, seasons: tuple[int, ...] = ()) -> tuple[str, ...]:
    # Here, not at the top: the help (this module's parser) answers without pandas.
    from rnncast.pipeline.core import backtest

    if choice == "none":
        return ()
    if choice == "auto":
        if not backtest.classical_available():
            return ()
        long_season = any(m > 24 for m in seasons)
        return AUTO_CLASSICAL + (("MSTL",) if long_season else ())
    names = tuple(n.strip() for n in choice.split(",") if n.strip())
    unknown = [n for n in names if n not in CLASSICAL_MODELS]
    if unknown:
        raise JobArgumentError(
            f"rnncast evaluate: --classical {unknown} unknown; use auto, none or "
            f"{','.join(CLASSICAL_MODELS)}"
        )
    if names and not backtest.classical_available():
        raise JobArgumentError(
            "rnncast evaluate: --classical needs statsforecast; install it with "
            "pip install 'rnncast[classical]' (or pass --classical none)"
        )
    return names


# Without --horizon and --model (a model gives its own horizon).
DEFAULT_HORIZON = 24


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """Settings of one backtest. ``dataset`` and ``training`` are the dataset job's and
    training's own configs, used at every origin with the origin's history as input (their
    ``input``/``output`` and ``data``/``model_dir`` are set per origin)."""

    input: str
    output: str
    dataset: DatasetConfig
    training: TrainConfig
    horizon: int | None = None
    origins: int | None = None
    origin_every: int | None = None
    season: int | None = None
    refit_every: int = 1
    warm_start: bool = False
    model: str | None = None
    classical: str = "auto"
    mstl_seasons: tuple[int, ...] = ()
    plot_series: int = 4

    def check(self) -> EvaluateConfig:
        if not self.input or not self.output:
            raise JobArgumentError("rnncast evaluate: --input and --output are required")
        if self.training.init_from:
            raise JobArgumentError(
                "rnncast evaluate: training.init_from could carry data from after the origins "
                "into the backtest; use --warm-start (each refit starts from the previous "
                "origin's model) or --model"
            )
        if self.refit_every < 1 or self.plot_series < 0:
            raise JobArgumentError("rnncast evaluate: --refit-every >= 1 and --plot-series >= 0")
        if self.mstl_seasons and min(self.mstl_seasons) < 1:
            raise JobArgumentError("rnncast evaluate: --mstl-seasons must be positive")
        return self


def config_from_args(args) -> EvaluateConfig:
    """The config of parsed ``rnncast evaluate`` flags (:func:`build_parser`)."""
    from rnncast.model.flags import config_from_args as training_config
    from rnncast.pipeline.jobs.dataset import config_from_options as dataset_config

    return EvaluateConfig(
        input=args.input,
        output=args.output,
        dataset=dataset_config(args),
        training=training_config(args, "", ""),
        horizon=args.horizon,
        origins=args.origins,
        origin_every=args.origin_every,
        season=args.season,
        refit_every=args.refit_every,
        warm_start=bool(args.warm_start),
        model=args.model,
        classical=args.classical,
        mstl_seasons=parse_mstl_seasons(args.mstl_seasons),
        plot_series=args.plot_series,
    )
