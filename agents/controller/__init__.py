"""The learned memory controller: AtomMem envs as a small discrete decision problem (:mod:`.env`),
its macro-actions (:mod:`.macros`), static workflows (:mod:`.workflows`), evaluation helpers
(:mod:`.evaluation`), learning curves (:mod:`.curve`) and the masked RLlib module (:mod:`.rllib_module`,
which needs ``ray[rllib]``). Nothing is imported here, so the package costs nothing to import.
"""
