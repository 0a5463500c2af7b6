"""Evaluation: image metrics and speed measurements."""
