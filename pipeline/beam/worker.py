"""``python -m rnncast.pipeline.beam.worker``: a worker process of the local engine
(``--direct_running_mode=multi_processing``).

It is Beam's SDK harness (``apache_beam.runners.worker.sdk_worker_main``) started without the
two notes Beam's own entry point prints before it reads any option: that the optional Google
Cloud client libraries are missing, and that its logging handler was created. They are
dropped only when the job asked its workers for warnings and errors only (rnncast's default,
``--default_sdk_harness_log_level=WARNING``; ``-v`` keeps them).
"""

from __future__ import annotations

import json
import logging
import os
import sys

# Start-up notes nobody acts on (rnncast needs the cloud clients only for gs:// and Dataflow).
NOTES = ("apitools not found", "Logging handler created")
HARNESS = "apache_beam.runners.worker.sdk_worker_main"
QUIET_LEVELS = ("WARNING", "ERROR", "CRITICAL")


class _DropNotes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(NOTES)


def wants_quiet(pipeline_options_json: str) -> bool:
    """Whether the job's pipeline options (the harness's ``PIPELINE_OPTIONS`` JSON) set the
    workers' default log level to WARNING or above."""
    try:
        options = json.loads(pipeline_options_json or "{}")
    except ValueError:
        return False
    options = options.get("options", options)
    for key, value in options.items():
        if key.split(":")[-2:-1] == ["default_sdk_harness_log_level"] or key == (
            "default_sdk_harness_log_level"
        ):
            return str(value).upper() in QUIET_LEVELS
    return False


def main() -> None:
    if wants_quiet(os.environ.get("PIPELINE_OPTIONS", "")):
        notes = _DropNotes()
        logging.getLogger().addFilter(notes)  # the cloud note is logged on the root logger
        logging.getLogger(HARNESS).addFilter(notes)
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)


if __name__ == "__main__":
    main()
