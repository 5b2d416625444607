"""What a checkpoint holds of a training state, and putting it back for a resume."""

from __future__ import annotations

from typing import Any

import torch

from torchkiln.workers.training import TrainState


def checkpoint_payload(state: TrainState, model_name: str) -> dict[str, Any]:
    """Everything needed to resume bit for bit: weights, optimizer, epoch and RNG states."""
    rng: dict[str, torch.Tensor] = {
        "torch": torch.get_rng_state(),
        "generator": state.generator.get_state(),
    }
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    payload = {
        "model_name": model_name,
        "epoch": state.epoch,
        "model": state.module.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "rng": rng,
    }
    if state.scheduler is not None:
        payload["scheduler"] = state.scheduler.state_dict()
    if state.stopper is not None:
        payload["early_stopping"] = state.stopper.state_dict()
    return payload


def restore_state(state: TrainState, payload: dict[str, Any]) -> None:
    """Put a checkpoint's weights, optimizer, epoch and RNGs back into ``state``."""
    state.module.load_state_dict(payload["model"])
    # load_state_dict copies every group setting, "fused" included; keep this process's
    # choice so a job resumed on another device type never asks for a kernel it lacks.
    fused = [group.get("fused") for group in state.optimizer.param_groups]
    state.optimizer.load_state_dict(payload["optimizer"])
    for group, choice in zip(state.optimizer.param_groups, fused, strict=True):
        if "fused" in group:
            group["fused"] = choice
    state.epoch = int(payload["epoch"])
    if state.scheduler is not None and "scheduler" in payload:
        state.scheduler.load_state_dict(payload["scheduler"])
    if state.stopper is not None and "early_stopping" in payload:
        state.stopper.load_state_dict(payload["early_stopping"])
    rng = payload["rng"]
    torch.set_rng_state(rng["torch"].cpu())
    state.generator.set_state(rng["generator"].cpu())
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"].cpu())
