"""Evaluation: true success with confidence intervals, reward-model diagnostics, plots."""
