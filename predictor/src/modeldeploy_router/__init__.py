"""modeldeploy router: weighted canary split and shadow mirroring."""
