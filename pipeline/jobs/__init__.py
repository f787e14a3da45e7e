"""The jobs: each a library call with a config, and a command line that parses into it."""
