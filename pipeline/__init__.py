"""rnncast pipelines: the Beam dataset job, shared transforms, and the TFRecord reader."""

from importlib import resources

__version__ = "0.1.0"


def embedded_data_path() -> str:
    """Path of the embedded real dataset (NOAA hourly temperatures 2010, public domain)."""
    return str(resources.files(__name__).joinpath("data/noaa_hourly_temperatures_2010.csv"))
