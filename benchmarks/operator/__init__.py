"""Operator benchmarks: scale (N ModelDeployments) and detection-to-rollback time."""
