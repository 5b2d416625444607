"""The fused Linear/ReLU + SGD step computes what autograd and torch.optim.SGD compute."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from torchkiln.models import REGISTRY
from torchkiln.models.common.options import TrainOptions, build_loss, build_optimizer
from torchkiln.workers.mlp_step import MlpSgdStep, mlp_sgd_step
from torchkiln.workers.training import TrainState, autograd_step

N, BATCH = 50, 16  # the last batch is short: 16, 16, 16, 2


def network(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 7), nn.ReLU(), nn.Linear(7, 4)
    )


def data(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(N, 1, 3, 4, generator=generator), torch.randint(
        0, 4, (N,), generator=generator
    )


def state_for(module: nn.Module, options: TrainOptions) -> TrainState:
    return TrainState(
        module=module,
        optimizer=build_optimizer(options, module.parameters()),
        generator=torch.Generator(),
    )


def batches(epochs: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = data()
    return [(x[s : s + BATCH], y[s : s + BATCH]) for _ in range(epochs) for s in range(0, N, BATCH)]


def fused_for(state: TrainState, options: TrainOptions) -> MlpSgdStep:
    step = mlp_sgd_step(
        state.module, state.optimizer, build_loss("cross_entropy"), None, data()[0], BATCH
    )
    assert step is not None
    return step


def assert_same(a: TrainState, b: TrainState) -> None:
    for p, q in zip(a.module.parameters(), b.module.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    left, right = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert left["param_groups"] == right["param_groups"]
    assert left["state"].keys() == right["state"].keys()
    for key, entry in left["state"].items():
        assert entry.keys() == right["state"][key].keys()
        torch.testing.assert_close(entry["momentum_buffer"], right["state"][key]["momentum_buffer"])


@pytest.mark.parametrize(
    ("momentum", "weight_decay"), [(0.0, 0.0), (0.5, 0.0), (0.9, 1e-2), (0.0, 1e-2)]
)
def test_same_losses_weights_and_optimizer_state_as_autograd(
    momentum: float, weight_decay: float
) -> None:
    options = TrainOptions(lr=0.1, momentum=momentum, weight_decay=weight_decay)
    loss_fn = build_loss("cross_entropy")
    reference, fused = state_for(network(), options), state_for(network(), options)
    step = fused_for(fused, options)
    for xb, yb in batches(epochs=3):
        expected = autograd_step(reference, loss_fn, options, xb, yb)
        torch.testing.assert_close(step(xb, yb), expected.detach(), rtol=1e-6, atol=1e-7)
    assert_same(reference, fused)
    # The weights moved: a step that did nothing would also "match" at step zero.
    assert not torch.equal(reference.module[1].weight, network()[1].weight)


def test_continues_from_momentum_that_autograd_left_and_follows_the_lr() -> None:
    """A checkpoint written by either path resumes on the other; schedules change lr."""
    options = TrainOptions(lr=0.1, momentum=0.9)
    loss_fn = build_loss("cross_entropy")
    straight, resumed = state_for(network(), options), state_for(network(), options)
    steps = batches(epochs=4)
    for xb, yb in steps[:6]:
        autograd_step(straight, loss_fn, options, xb, yb)
        autograd_step(resumed, loss_fn, options, xb, yb)
    restarted = state_for(network(seed=5), options)
    restarted.module.load_state_dict(resumed.module.state_dict())
    restarted.optimizer.load_state_dict(resumed.optimizer.state_dict())
    for state in (straight, restarted):
        state.optimizer.param_groups[0]["lr"] = 0.03
    step = fused_for(restarted, options)
    for xb, yb in steps[6:]:
        autograd_step(straight, loss_fn, options, xb, yb)
        step(xb, yb)
    assert_same(straight, restarted)


def mnist_mlp(**params: object) -> nn.Module:
    spec = REGISTRY["mnist_mlp"]
    return spec.build(spec.parse_options(params))


IMAGES = torch.zeros(8, 1, 28, 28)
ROWS = torch.zeros(8, 4)
SGD = TrainOptions(momentum=0.5)
Case = tuple[nn.Module, TrainOptions, str, torch.Tensor]


def other_cases() -> dict[str, Callable[[], Case]]:
    cnn = REGISTRY["mnist_cnn"]
    return {
        "dropout": lambda: (mnist_mlp(dropout=0.2), SGD, "cross_entropy", IMAGES),
        "batch norm": lambda: (mnist_mlp(batch_norm=True), SGD, "cross_entropy", IMAGES),
        "convolutions": lambda: (cnn.build(cnn.parse_options({})), SGD, "cross_entropy", IMAGES),
        "sigmoid": lambda: (
            nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2)),
            SGD,
            "cross_entropy",
            ROWS,
        ),
        "no bias": lambda: (nn.Sequential(nn.Linear(4, 2, bias=False)), SGD, "cross_entropy", ROWS),
        "ends in relu": lambda: (
            nn.Sequential(nn.Linear(4, 2), nn.ReLU()),
            SGD,
            "cross_entropy",
            ROWS,
        ),
        "images without flatten": lambda: (
            nn.Sequential(nn.Linear(28, 2)),
            SGD,
            "cross_entropy",
            IMAGES,
        ),
        "adam": lambda: (mnist_mlp(), TrainOptions(optimizer="adam"), "cross_entropy", IMAGES),
        "clipping": lambda: (
            mnist_mlp(),
            TrainOptions(grad_clip_norm=1.0),
            "cross_entropy",
            IMAGES,
        ),
        "mse": lambda: (mnist_mlp(), SGD, "mse", IMAGES),
        "float64 inputs": lambda: (mnist_mlp(), SGD, "cross_entropy", IMAGES.double()),
    }


@pytest.mark.parametrize("case", list(other_cases()))
def test_everything_else_keeps_the_autograd_path(case: str) -> None:
    module, options, loss, inputs = other_cases()[case]()
    optimizer = build_optimizer(options, module.parameters())
    step = mlp_sgd_step(module, optimizer, build_loss(loss), options.grad_clip_norm, inputs, 8)
    assert step is None


def test_optimizer_settings_outside_plain_sgd_keep_the_autograd_path() -> None:
    module = mnist_mlp()
    inputs = torch.zeros(8, 1, 28, 28)
    loss_fn = build_loss("cross_entropy")
    for settings in ({"nesterov": True, "momentum": 0.5}, {"dampening": 0.1, "momentum": 0.5}):
        optimizer = torch.optim.SGD(module.parameters(), lr=0.1, **settings)
        assert mlp_sgd_step(module, optimizer, loss_fn, None, inputs, 8) is None
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    smoothing = nn.CrossEntropyLoss(label_smoothing=0.1)
    assert mlp_sgd_step(module, optimizer, smoothing, None, inputs, 8) is None
    weighted = nn.CrossEntropyLoss(weight=torch.ones(10))
    assert mlp_sgd_step(module, optimizer, weighted, None, inputs, 8) is None
    half = torch.optim.SGD(list(module.parameters())[:4], lr=0.1)
    assert mlp_sgd_step(module, half, loss_fn, None, inputs, 8) is None


def test_the_seed_recipe_takes_the_fused_path() -> None:
    spec = REGISTRY["mnist_mlp"]
    options = spec.parse_options({"optimizer": "sgd", "lr": 0.01, "momentum": 0.5})
    module = spec.build(options)
    optimizer = build_optimizer(options, module.parameters())
    loss_fn = build_loss(options.loss)
    assert mlp_sgd_step(module, optimizer, loss_fn, None, IMAGES, 8) is not None
