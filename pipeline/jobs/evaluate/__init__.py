"""``rnncast evaluate``: a rolling-origin backtest. ``options`` (flags and
:class:`EvaluateConfig`), ``job`` (the origins: train, forecast, score), ``report`` (metrics,
summary, ``evaluation.json``) and ``plots``."""

from rnncast.pipeline.jobs.evaluate.job import run, run_config, score_origin
from rnncast.pipeline.jobs.evaluate.options import (
    DESCRIPTION,
    EvaluateConfig,
    build_parser,
    classical_models,
    config_from_args,
    parse_mstl_seasons,
)
from rnncast.pipeline.jobs.evaluate.report import METRICS_FILE, SUMMARY_FILE, TABLE_COLUMNS

__all__ = [
    "DESCRIPTION",
    "METRICS_FILE",
    "SUMMARY_FILE",
    "TABLE_COLUMNS",
    "EvaluateConfig",
    "build_parser",
    "classical_models",
    "config_from_args",
    "parse_mstl_seasons",
    "run",
    "run_config",
    "score_origin",
]
