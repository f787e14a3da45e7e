"""Beam pieces shared by the jobs: transforms, DoFns, options."""
