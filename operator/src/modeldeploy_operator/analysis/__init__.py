"""Analysis: pure verdicts, PromQL builders, PSI, and the Prometheus provider."""
