"""Release gates beside analysis: webhooks (pre-rollout, rollout, confirm-promotion,
post-rollout, rollback, event) and notifications."""
