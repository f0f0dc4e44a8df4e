"""`make demo`: the project's main job, end to end, on the local cluster.

Four model versions trained on a scikit-learn dataset go through the operator
installed with the Helm chart: v1 straight to stable, v2 promoted through
every canary step, v3 (trained on a shifted feature) rolled back on drift,
v4 (permuted labels) rejected in shadow while users only see stable. The
pure parts (timeline, judging, summary) live apart from the I/O so that they
are unit-tested without a cluster.
"""
