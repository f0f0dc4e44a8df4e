"""Router benchmark: direct vs router vs nginx (see run.py)."""
