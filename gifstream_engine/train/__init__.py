"""Training: configuration and presets, schedule, losses, densification, checkpoints, the run folder and its
loading as a sequence, the trainer, and train-then-evaluate."""
