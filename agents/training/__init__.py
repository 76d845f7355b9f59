"""How policies learn: rollouts, metrics, GRPO math, the learner, checkpoints, tracking, SFT data,
evaluation and the single-process runs. Imports nothing heavy at package level."""
