"""The process-backed node: runs each Pod's containers as local processes."""
