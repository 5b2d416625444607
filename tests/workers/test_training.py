"""The training loop: every optimizer, reproducibility, exact resume, divergence."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.utils.fit_runs import CPU, run_fit
from torchkiln.models import REGISTRY
from torchkiln.models.common.registry import DataRoot
from torchkiln.service.store.checkpoint_files import load_checkpoint, save_checkpoint
from torchkiln.workers.checkpoint_payload import checkpoint_payload, restore_state
from torchkiln.workers.training import Diverged, TrainState, fit, new_state


def run(
    name: str, params: dict, *, state: TrainState | None = None, stop_after: int | None = None
) -> tuple[TrainState, list[dict[str, float]]]:
    state, history, _ = run_fit(name, params, state=state, stop_after=stop_after)
    return state, history


@pytest.mark.parametrize(
    "optimizer", ["sgd", "adam", "adagrad", "adamax", "asgd", "lbfgs", "rmsprop", "rprop"]
)
def test_every_optimizer_lowers_the_loss(optimizer: str) -> None:
    _, history = run("linear_noisy", {"optimizer": optimizer, "epochs": 30, "lr": 0.01})
    assert history[-1]["train_loss"] < history[0]["train_loss"]


@pytest.mark.parametrize(
    "name", ["linear", "quadratic", "linear_noisy", "logistic_hours", "clusters2d"]
)
def test_same_spec_and_seed_give_the_same_history_bit_for_bit(name: str) -> None:
    params = {"epochs": 50, "seed": 7}
    assert run(name, params)[1] == run(name, params)[1]
    assert run(name, params)[1] != run(name, {**params, "seed": 8})[1]


def test_resume_from_a_checkpoint_continues_exactly(tmp_path: Path) -> None:
    params = {"epochs": 40, "seed": 3, "batch_size": 16, "optimizer": "adam", "lr": 0.05}
    _, straight = run("clusters2d", params)
    half, first = run("clusters2d", params, stop_after=20)
    saved = save_checkpoint(checkpoint_payload(half, "clusters2d"), tmp_path / "c.pt")
    spec = REGISTRY["clusters2d"]
    resumed = new_state(spec, spec.parse_options(params), CPU)
    restore_state(resumed, load_checkpoint(saved.path, CPU, saved.sha256))
    assert resumed.epoch == 20
    _, second = run("clusters2d", params, state=resumed)
    assert first + second == straight


def test_divergence_raises_after_recording_the_epoch() -> None:
    with pytest.raises(Diverged, match=r"loss diverged at epoch \d+"):
        run("linear", {"lr": 10.0, "epochs": 500})


def test_trained_answers() -> None:
    state, _ = run("linear", {"epochs": 1000})
    assert state.module(torch.tensor([[4.0]])).item() == pytest.approx(8.0, abs=0.05)
    state, _ = run("logistic_hours", {})
    p1, p4 = torch.sigmoid(state.module(torch.tensor([[1.0], [4.0]]))).squeeze(1).tolist()
    assert p1 < 0.5 < p4


@pytest.mark.parametrize(
    ("optimizer", "fused"),
    [("sgd", True), ("adam", True), ("adagrad", True), ("rmsprop", None), ("lbfgs", None)],
)
def test_cpu_optimizers_use_fused_kernels_where_torch_has_them(
    optimizer: str, fused: bool | None
) -> None:
    spec = REGISTRY["mnist_mlp"]
    state = new_state(spec, spec.parse_options({"optimizer": optimizer}), torch.device("cpu"))
    assert state.optimizer.param_groups[0].get("fused") is fused


def test_the_shuffle_buffer_is_reused_and_holds_each_epochs_permutation() -> None:
    spec = REGISTRY["logistic_hours"]
    options = spec.parse_options({"batch_size": 2, "epochs": 3, "seed": 5})
    state = new_state(spec, options, torch.device("cpu"))
    data = spec.load_data(options, DataRoot(Path("."), False))
    # The worker's generator is seeded with the job's seed and drives only the shuffling here.
    orders = torch.Generator().manual_seed(options.seed)
    seen: list[int] = []

    def record(s: TrainState, metrics: dict[str, float]) -> None:
        assert s.shuffled is not None
        order = torch.randperm(len(data.train), generator=orders)
        assert torch.equal(s.shuffled.x, data.train.x[order])
        assert torch.equal(s.shuffled.y, data.train.y[order])
        seen.append(s.shuffled.x.data_ptr())

    fit(spec, options, data, state, on_epoch=record, should_stop=lambda: False)
    assert len(seen) == 3 and len(set(seen)) == 1, "one buffer for the whole run"
