"""modeldeploy operator: rollouts of ModelDeployments."""
