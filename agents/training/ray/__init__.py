"""The distributed layer of training: the Ray run, cluster plumbing, rollout workers, engines, vLLM,
weight sync, the learner group, placement and dispatch. Ray itself is imported lazily."""
