"""The pipelines, in four layers (core < io < beam < jobs) under the command line; and the
embedded real datasets the demo and the tests use."""

from importlib import resources

EMBEDDED_DATASETS = {
    # Daily observations (the demo's and the README's default data).
    "weather": "data/seattle_weather_daily_2012_2015.csv",
    # Hourly climatological temperatures: long, regular series with one missing hour each.
    "hourly": "data/noaa_hourly_temperatures_2010.csv",
}


def embedded_data_path(name: str = "weather") -> str:
    """Path of an embedded real dataset (public domain NOAA data; see ``pipeline/data``):
    ``weather`` (Seattle daily weather 2012-2015, the default) or ``hourly``."""
    return str(resources.files(__name__).joinpath(EMBEDDED_DATASETS[name]))
