"""``python -m rnncast``: the same command line as ``rnncast``."""

from rnncast.pipeline.cli import main

raise SystemExit(main())
