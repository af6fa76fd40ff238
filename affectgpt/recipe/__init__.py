"""Training: the loop, GRPO, distribution, checkpoints, telemetry, the frozen-feature cache."""
