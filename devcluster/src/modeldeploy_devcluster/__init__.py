"""A local Kubernetes cluster of real control-plane binaries and a process-backed node."""
