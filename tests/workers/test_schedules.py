"""Learning-rate schedules and early stopping in the training loop, and exact resume with them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.utils.fit_runs import CPU, run_fit
from torchkiln.models import REGISTRY
from torchkiln.service.store.checkpoint_files import load_checkpoint, save_checkpoint
from torchkiln.service.store.states import StopKind, stop_kind
from torchkiln.workers.checkpoint_payload import checkpoint_payload, restore_state
from torchkiln.workers.early_stopping import MetricMissing
from torchkiln.workers.training import FitOutcome, new_state


def test_step_schedule_halves_the_lr_every_step_size_epochs() -> None:
    schedule = {"kind": "step", "step_size": 5, "gamma": 0.5}
    _, history, _ = run_fit("linear_noisy", {"epochs": 12, "lr": 0.01, "scheduler": schedule})
    assert [h["lr"] for h in history] == pytest.approx([0.01] * 5 + [0.005] * 5 + [0.0025] * 2)


def test_cosine_schedule_follows_the_cosine_to_eta_min() -> None:
    schedule = {"kind": "cosine", "eta_min": 0.001}
    _, history, _ = run_fit("linear_noisy", {"epochs": 10, "lr": 0.01, "scheduler": schedule})
    expected = [0.001 + 0.009 * (1 + math.cos(math.pi * e / 10)) / 2 for e in range(10)]
    assert [h["lr"] for h in history] == pytest.approx(expected)


def test_plateau_schedule_cuts_the_lr_only_after_the_metric_stalls() -> None:
    schedule = {"kind": "plateau", "metric": "val_loss", "factor": 0.5, "patience": 1}
    params = {"epochs": 60, "lr": 0.5, "momentum": 0.9, "scheduler": schedule}
    _, history, _ = run_fit("diabetes", params)
    rates = [h["lr"] for h in history]
    assert rates[0] == 0.5 and min(rates) < 0.5
    assert rates == sorted(rates, reverse=True)
    best = math.inf
    for before, after, epoch in zip(rates, rates[1:], history, strict=False):
        if after < before:
            assert epoch["val_loss"] >= best * (1 - 1e-4)  # this epoch did not improve
        best = min(best, epoch["val_loss"])


def test_no_lr_metric_without_a_schedule() -> None:
    _, history, _ = run_fit("linear", {"epochs": 3})
    assert "lr" not in history[0]


def test_early_stopping_ends_within_patience_plus_one_of_the_best() -> None:
    rule = {"metric": "val_loss", "patience": 4, "min_delta": 0.001}
    params = {"epochs": 500, "lr": 0.5, "momentum": 0.9, "early_stopping": rule}
    state, history, result = run_fit("diabetes", params)
    losses = [h["val_loss"] for h in history]
    best_epoch = losses.index(min(losses)) + 1
    assert result.outcome == FitOutcome.STOPPED_EARLY
    assert state.epoch == len(history) < 500
    assert state.epoch - best_epoch <= rule["patience"] + 1
    assert result.reason is not None and result.reason.startswith(
        "early stopping: val_loss did not improve by 0.001 for 4 epochs (best "
    )
    assert stop_kind(result.reason) == StopKind.EARLY_STOPPING


def test_early_stopping_on_an_accuracy_waits_for_it_to_rise() -> None:
    rule = {"metric": "train_accuracy", "patience": 3}
    state, history, result = run_fit("clusters2d", {"epochs": 300, "early_stopping": rule})
    accuracies = [h["train_accuracy"] for h in history]
    assert result.outcome == FitOutcome.STOPPED_EARLY
    assert state.epoch - (accuracies.index(max(accuracies)) + 1) == 3


def test_an_unknown_metric_fails_with_the_names_the_model_records() -> None:
    with pytest.raises(MetricMissing, match="'val_los' is not recorded.*train_loss"):
        run_fit("linear", {"epochs": 5, "early_stopping": {"metric": "val_los", "mode": "min"}})


def test_the_mode_comes_from_the_metric_name_or_must_be_given() -> None:
    options = REGISTRY["diabetes"].parse_options
    assert options({"early_stopping": {"metric": "val_accuracy"}}).early_stopping.mode == "max"
    assert options({"early_stopping": {}}).early_stopping.mode == "min"
    with pytest.raises(ValidationError, match="set mode"):
        options({"early_stopping": {"metric": "w"}})
    with pytest.raises(ValidationError):
        options({"scheduler": {"kind": "exponential"}})


@pytest.mark.parametrize(
    "schedule",
    [
        {"kind": "step", "step_size": 3, "gamma": 0.7},
        {"kind": "cosine", "t_max": 15},
        {"kind": "plateau", "metric": "train_loss", "patience": 0, "factor": 0.5},
    ],
)
def test_resume_with_a_schedule_and_early_stopping_is_exact(tmp_path: Path, schedule: dict) -> None:
    params = {
        "epochs": 30,
        "seed": 3,
        "batch_size": 16,
        "optimizer": "adam",
        "lr": 0.05,
        "scheduler": schedule,
        "early_stopping": {"metric": "train_loss", "patience": 50},
    }
    _, straight, _ = run_fit("clusters2d", params)
    half, first, paused = run_fit("clusters2d", params, stop_after=13)
    assert paused.outcome == FitOutcome.PAUSED
    saved = save_checkpoint(checkpoint_payload(half, "clusters2d"), tmp_path / "c.pt")
    spec = REGISTRY["clusters2d"]
    resumed = new_state(spec, spec.parse_options(params), CPU)
    restore_state(resumed, load_checkpoint(saved.path, CPU, saved.sha256))
    assert resumed.stopper is not None and resumed.stopper.best_epoch == half.stopper.best_epoch
    _, second, _ = run_fit("clusters2d", params, state=resumed)
    assert first + second == straight
