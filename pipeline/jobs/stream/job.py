"""The stream pipeline and ``run``/``run_config``."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import replace

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from rnncast.errors import JobArgumentError
from rnncast.pipeline.beam.engine import fix_streaming_engine
from rnncast.pipeline.beam.options import parse_job_options
from rnncast.pipeline.beam.transforms import REJECTED
from rnncast.pipeline.core import forecasting
from rnncast.pipeline.io import commit, model_loader
from rnncast.pipeline.io.locations import check_output_directory
from rnncast.pipeline.io.state_store import load_state_files
from rnncast.pipeline.jobs.stream.options import (
    DESCRIPTION,
    FORECASTS,
    STATE,
    STATES,
    StreamConfig,
    StreamOptions,
    config_from_options,
)
from rnncast.pipeline.jobs.stream.sinks import SnapshotState, WriteDeadLetters, WriteForecasts
from rnncast.pipeline.jobs.stream.sources import ReadPoints, WatchFiles, match_files
from rnncast.pipeline.jobs.stream.step import AdvanceSeries


class StreamForecast(beam.PTransform):
    """The stream after reading: ``{"points", "rejected"}`` (from :class:`ReadPoints`) →
    forecast files, dead-letter files and state snapshots under ``config.output``."""

    def __init__(self, config: StreamConfig, model: forecasting.ModelInfo, state_files=()):
        super().__init__()
        self._config = config
        self._model = model
        self._state_files = tuple(state_files)

    def expand(self, read):
        config, model = self._config, self._model
        advanced = read["points"] | "AdvanceSeries" >> AdvanceSeries(
            config, model, self._state_files
        )
        _ = advanced[FORECASTS] | "WriteForecasts" >> WriteForecasts(
            FileSystems.join(config.output, FORECASTS),
            config.window_us,
            model,
            config.horizon,
            pacing=config.output,
        )
        _ = (
            (read[REJECTED], advanced[REJECTED])
            | "AllRejected" >> beam.Flatten()
            | "WriteRejected"
            >> WriteDeadLetters(
                FileSystems.join(config.output, REJECTED), config.window_us, pacing=config.output
            )
        )
        return advanced[STATES] | "SnapshotState" >> SnapshotState(config, model, self._state_files)


def build(
    pipeline: beam.Pipeline,
    config: StreamConfig,
    model: forecasting.ModelInfo,
    state_files: list[str],
    direct: bool,
) -> beam.PCollection:
    """Add the source chosen by ``config`` and the stream to ``pipeline``; returns the
    snapshot run ids."""
    if config.input_pattern:
        arrivals = pipeline | "WatchFiles" >> WatchFiles(config, direct)
        messages = False
    elif config.pubsub_subscription:
        from apache_beam.io.gcp.pubsub import ReadFromPubSub

        subscription = config.pubsub_subscription
        arrivals = (
            pipeline
            | "ReadPubSub"
            >> ReadFromPubSub(
                subscription=subscription,
                with_attributes=True,
                timestamp_attribute=config.pubsub_timestamp_attribute,
            )
            | "PubSubPayload"
            >> beam.Map(lambda m: (f"pubsub:{subscription}/{m.message_id}", m.data))
        )
        messages = True
    else:
        from apache_beam.io.kafka import ReadFromKafka

        topic = config.kafka_topic
        arrivals = (
            pipeline
            | "ReadKafka"
            >> ReadFromKafka(
                consumer_config={"bootstrap.servers": config.kafka_bootstrap_servers},
                topics=[topic],
            )
            | "KafkaPayload" >> beam.Map(lambda kv: (f"kafka:{topic}", kv[1]))
        )
        messages = True
    read = arrivals | "ReadPoints" >> ReadPoints(config.columns, messages, pacing=config.output)
    return read | "Stream" >> StreamForecast(config, model, state_files)


def run(argv: list[str]) -> dict:
    """Run ``rnncast stream`` with command-line ``argv`` until it is stopped (or, with
    ``--stop-after-seconds``/``--max-files``, until it has drained); returns the counters."""
    options, pipeline_options = parse_job_options(
        argv, StreamOptions, "rnncast stream", DESCRIPTION
    )
    return run_config(config_from_options(options), pipeline_options)


def run_config(config: StreamConfig, pipeline_options: PipelineOptions | None = None) -> dict:
    """Run the stream of ``config`` on the runner of ``pipeline_options`` (default: the
    DirectRunner's streaming engine) until it is stopped or has drained; returns the
    counters. What ``rnncast stream`` runs."""
    if not config.model:
        raise JobArgumentError("rnncast stream: --model is required")
    config = replace(config, model=model_loader.resolve_export(config.model))
    # Checks the export (config, weights, fingerprint) here, so a bad one fails before the run.
    model = model_loader.load_model(config.model).info
    config = config.check(model)
    pipeline_options = pipeline_options or PipelineOptions()
    state_files = load_state_files(config.state_in, model)[0] if config.state_in else []
    commit.check_owner(config.state_dir, commit.STATE, (STATE,))  # before anything is written
    standard = pipeline_options.view_as(StandardOptions)
    standard.streaming = True
    direct = standard.runner in (None, "DirectRunner", "BundleBasedDirectRunner")
    if direct:
        # The DirectRunner's streaming engine (the default DirectRunner picks a batch one),
        # with its stateful steps' work queues fixed (see engine.fix_streaming_engine).
        standard.runner = "BundleBasedDirectRunner"
        fix_streaming_engine()
        if config.kafka_topic:
            raise JobArgumentError(
                "rnncast stream: Kafka is a cross-language transform, which the DirectRunner "
                "cannot run; use --runner FlinkRunner, DataflowRunner or PrismRunner"
            )
    check_output_directory(config.output, "--output")
    source = config.input_pattern or config.pubsub_subscription or config.kafka_topic
    print(f"rnncast stream: reading {source}, writing {config.output}", file=sys.stderr)
    pipeline = beam.Pipeline(options=pipeline_options)
    build(pipeline, config, model, state_files, direct)
    result = pipeline.run()
    result.wait_until_finish()
    # Beam counters (rnncast.stream/...) are reported by runners that keep them (Dataflow's
    # UI, Flink); the DirectRunner's streaming engine loses those of timer-driven bundles, so
    # the summary of a bounded run is read from what was written.
    summary = summarise_output(config.output, model)
    print(
        f"rnncast stream: stopped; {summary['forecast_files']} forecast file(s) with "
        f"{summary['forecast_rows']} rows, {summary['snapshot_series']} series in the latest "
        f"state snapshot, dead letters {summary['rejected_by_reason']}"
    )
    return summary


def summarise_output(output: str, model: forecasting.ModelInfo) -> dict:
    """Counts of what a stream has written under ``output`` (all runs into it)."""
    forecast_files = match_files(FileSystems.join(output, FORECASTS, "*", "*.parquet"))
    rows = 0
    for path in forecast_files:
        with FileSystems.open(path) as source:
            rows += pq.read_metadata(io.BytesIO(source.read())).num_rows
    reasons: dict[str, int] = {}
    for path in match_files(FileSystems.join(output, REJECTED, "*", "*.jsonl")):
        with FileSystems.open(path) as source:
            for line in source.read().decode("utf-8").splitlines():
                reason = json.loads(line)["reason"]
                reasons[reason] = reasons.get(reason, 0) + 1
    state_dir = FileSystems.join(output, STATE)
    series = 0
    if commit.committed_run(state_dir):
        series = commit.read_json(FileSystems.join(state_dir, commit.METADATA))["num_series"]
    return {
        "forecast_files": len(forecast_files),
        "forecast_rows": rows,
        "snapshot_series": series,
        "rejected_by_reason": dict(sorted(reasons.items())),
    }
