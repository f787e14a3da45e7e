"""The named choices and defaults that flags offer and the logic uses.

Imports nothing, so that a command's ``--help`` (which lists them) answers before numpy,
pandas, pyarrow or Beam would load; the modules that use them import them from here.
"""

from __future__ import annotations

# How missing grid points are filled, and per-series scaling (rnncast.pipeline.core.series).
FILL_METHODS = ("ffill", "zero", "interpolate")
SCALING_METHODS = ("standard", "mean", "none")
# Points at a series' ends beyond a gap of more than this many median spacings are rejected.
MAX_GAP_STEPS = 100.0
# Series with more filled than observed grid points are named in the dataset job's summary.
MOSTLY_FILLED = 0.5
# Input column names (series id, timestamp, value) by --columns preset.
COLUMN_PRESETS: dict[str, tuple[str, str, str]] = {
    "rnncast": ("series_id", "timestamp", "value"),
    "nixtla": ("unique_id", "ds", "y"),  # StatsForecast, NeuralForecast, MLForecast
    "gluonts": ("item_id", "timestamp", "target"),  # GluonTS, AutoGluon
}
# statsforecast models ``--classical`` accepts. 'auto' picks AUTO_CLASSICAL, plus MSTL when a
# season is longer than 24 steps (where ETS and Theta drop their seasonal component).
CLASSICAL_MODELS = ("AutoETS", "AutoTheta", "MSTL")
AUTO_CLASSICAL = ("AutoETS", "AutoTheta")
# rnncast stream: a forecast per advance, or each series' latest per window.
EMIT_MODES = ("every", "window")
