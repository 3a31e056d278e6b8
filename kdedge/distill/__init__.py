"""Distillation and training: students learn from ground truth and from a teacher (issue 3)."""
