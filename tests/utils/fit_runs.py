"""Train a catalogue model in-process on CPU and keep its per-epoch history."""

from __future__ import annotations

from pathlib import Path

import torch

from torchkiln.models import REGISTRY
from torchkiln.models.common.registry import DataRoot
from torchkiln.workers.training import FitResult, TrainState, fit, new_state, to_device

CPU = torch.device("cpu")


def run_fit(
    name: str,
    params: dict,
    *,
    state: TrainState | None = None,
    stop_after: int | None = None,
    data_root: DataRoot | None = None,
) -> tuple[TrainState, list[dict[str, float]], FitResult]:
    """``fit`` with the model's own data; pauses after ``stop_after`` epochs if given.

    The history leaves out epoch_seconds, the one figure that differs run to run.
    """
    options = REGISTRY[name].parse_options(params)
    spec = REGISTRY[name].for_options(options)  # as JobRun does: a sequential job's own spec
    data = to_device(spec.load_data(options, data_root or DataRoot(Path("unused"))), CPU)
    state = state or new_state(spec, options, CPU)
    history: list[dict[str, float]] = []
    result = fit(
        spec,
        options,
        data,
        state,
        on_epoch=lambda s, m: history.append({k: v for k, v in m.items() if k != "epoch_seconds"}),
        should_stop=lambda: False,
        should_pause=lambda: stop_after is not None and state.epoch >= stop_after,
    )
    return state, history, result
