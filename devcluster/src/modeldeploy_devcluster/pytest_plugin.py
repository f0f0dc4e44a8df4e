"""pytest fixtures for the local cluster (filled in by the local-cluster issue)."""
