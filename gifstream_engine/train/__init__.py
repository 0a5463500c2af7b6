"""Training: configuration and presets, schedule, losses, densification, checkpoints, the trainer."""
