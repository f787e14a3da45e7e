"""``rnncast evaluate``: a rolling-origin backtest. ``options`` (flags and
:class:`EvaluateConfig`), ``job`` (the origins: train, forecast, score), ``report`` (metrics,
summary, ``evaluation.json``) and ``plots``.

Its public names load on first use (PEP 562), so that ``rnncast evaluate --help``, which
needs only ``options``, answers without Beam, pandas or TensorFlow.
"""

from __future__ import annotations

import importlib

# Public name -> the module of this package that defines it.
_WHERE = {
    "run": "job",
    "run_config": "job",
    "score_origin": "job",
    "DESCRIPTION": "options",
    "EvaluateConfig": "options",
    "build_parser": "options",
    "classical_models": "options",
    "config_from_args": "options",
    "parse_mstl_seasons": "options",
    "METRICS_FILE": "report",
    "SUMMARY_FILE": "report",
    "TABLE_COLUMNS": "report",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
