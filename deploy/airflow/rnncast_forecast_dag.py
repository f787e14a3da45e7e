"""Airflow DAG: daily `rnncast schedule-run` through the Apache Beam provider's Python operator.

The operator runs ``deploy/airflow/schedule_run_pipeline.py`` (a thin entry point around
``rnncast schedule-run``) with the given pipeline options on the chosen Beam runner; the run
date is Airflow's logical date, so a cleared or retried task repeats the same period safely.
Needs ``apache-airflow-providers-apache-beam[google]`` and ``apache-airflow-providers-google``:
without the Google provider the operator refuses ``DataflowRunner`` and the DAG fails to import
(checked with a real Airflow's DagBag: ``RNNCAST_AIRFLOW_TEST=1 pytest tests/test_deploy.py``).
"""

from __future__ import annotations

import datetime as dt
import os

from airflow import DAG
from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("RNNCAST_ROOT", "gs://my-bucket/forecasting")

with DAG(
    dag_id="rnncast_daily_forecast",
    schedule="15 2 * * *",
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": dt.timedelta(minutes=10)},
) as dag:
    BeamRunPythonPipelineOperator(
        task_id="schedule_run",
        py_file=os.path.join(HERE, "schedule_run_pipeline.py"),
        runner="DataflowRunner",
        pipeline_options={
            "model": os.environ.get("RNNCAST_MODEL", "gs://my-bucket/model/export"),
            "input": os.environ.get("RNNCAST_INPUT", "gs://my-bucket/incoming/"),
            "root": ROOT,
            "run-date": "{{ ds }}",
            "project": os.environ.get("GCP_PROJECT", "my-project"),
            "region": "europe-west1",
            "temp_location": f"{ROOT}/tmp",
        },
        py_requirements=["rnncast[gcp]"],
        py_interpreter="python3",
        py_system_site_packages=False,
    )
