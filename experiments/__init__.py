"""Experiment code: rollouts, evaluation and training scripts built on atommem_env and agents."""
