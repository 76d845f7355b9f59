"""The controller's RLlib module: PPO's default MLP with inapplicable macros masked out of its logits.

The mask is :func:`agents.controller.env.action_mask` of the module's own input (the feature vector),
so the observation stays a plain ``Box`` and the env needs no extra key. Masked logits are set to the
float minimum: those macros get probability zero when sampling, in the greedy argmax, and in PPO's
log-probabilities, entropy and KL (identically in the old and new policy).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns

from agents.controller.env import action_mask


class MaskedPPOTorchRLModule(DefaultPPOTorchRLModule):
    """:class:`DefaultPPOTorchRLModule` whose action logits respect the macro mask."""

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return _masked(super()._forward(batch, **kwargs), batch)

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return _masked(super()._forward_train(batch, **kwargs), batch)


def _masked(output: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
    logits = output[Columns.ACTION_DIST_INPUTS]
    features = batch[Columns.OBS].detach().cpu().numpy()
    valid = torch.as_tensor(np.ascontiguousarray(action_mask(features)), device=logits.device)
    output[Columns.ACTION_DIST_INPUTS] = logits.masked_fill(~valid, torch.finfo(logits.dtype).min)
    return output
