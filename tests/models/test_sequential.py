"""The sequential model: every layer type, shape inference, refusals, presets, exact resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import TypeAdapter, ValidationError
from torch import nn

from tests.models.fixtures import train
from tests.utils.fit_runs import run_fit
from torchkiln.models import REGISTRY
from torchkiln.models.common.layers import KIND_BY_NAME, Layer
from torchkiln.models.common.network import Limits, build_network, plan_network
from torchkiln.models.common.options import build_loss, build_optimizer
from torchkiln.models.common.presets import PRESETS
from torchkiln.models.common.registry import DataRoot
from torchkiln.service.store.checkpoint_files import load_checkpoint, save_checkpoint
from torchkiln.workers.checkpoint_payload import checkpoint_payload, restore_state
from torchkiln.workers.mlp_step import mlp_sgd_step
from torchkiln.workers.training import new_state

CPU = torch.device("cpu")
SPEC = REGISTRY["sequential"]
LIMITS = Limits(64, 10_000_000, 10**10, 10**7)
LAYER_LIST = TypeAdapter(list[Layer])
IMAGE = (3, 8, 8)
SEQUENCE = (6, 5)
# One small list per layer type: (sample shape, layers), ending in 4 outputs a sample.
HEAD = [{"type": "flatten"}, {"type": "linear", "out_features": 4}]
CASES: dict[str, tuple[tuple[int, ...], list[dict[str, Any]]]] = {
    "linear": ((5,), [{"type": "linear", "out_features": 4}]),
    "flatten": (IMAGE, HEAD),
    "dropout": ((5,), [{"type": "dropout", "p": 0.2}, {"type": "linear", "out_features": 4}]),
    "dropout2d": (IMAGE, [{"type": "dropout2d", "p": 0.2}, *HEAD]),
    "batchnorm1d": ((5,), [{"type": "batchnorm1d"}, {"type": "linear", "out_features": 4}]),
    "batchnorm2d": (IMAGE, [{"type": "batchnorm2d"}, *HEAD]),
    "layernorm": ((5,), [{"type": "layernorm"}, {"type": "linear", "out_features": 4}]),
    "groupnorm": (IMAGE, [{"type": "groupnorm", "num_groups": 3}, *HEAD]),
    "conv1d": (SEQUENCE, [{"type": "conv1d", "out_channels": 4, "kernel_size": 3}, *HEAD]),
    "conv2d": (IMAGE, [{"type": "conv2d", "out_channels": 4, "kernel_size": 3}, *HEAD]),
    "convtranspose2d": (
        IMAGE,
        [{"type": "convtranspose2d", "out_channels": 2, "kernel_size": 2, "stride": 2}, *HEAD],
    ),
    "maxpool1d": (SEQUENCE, [{"type": "maxpool1d", "kernel_size": 2}, *HEAD]),
    "maxpool2d": (IMAGE, [{"type": "maxpool2d", "kernel_size": 2}, *HEAD]),
    "avgpool2d": (IMAGE, [{"type": "avgpool2d", "kernel_size": 2}, *HEAD]),
    "adaptiveavgpool2d": (IMAGE, [{"type": "adaptiveavgpool2d", "output_size": 1}, *HEAD]),
    "adaptivemaxpool2d": (IMAGE, [{"type": "adaptivemaxpool2d", "output_size": [2, 2]}, *HEAD]),
    "upsample": (IMAGE, [{"type": "upsample", "scale_factor": 2.0}, *HEAD]),
    "relu": ((5,), [{"type": "linear", "out_features": 4}, {"type": "relu"}]),
    "leakyrelu": ((5,), [{"type": "linear", "out_features": 4}, {"type": "leakyrelu"}]),
    "gelu": ((5,), [{"type": "linear", "out_features": 4}, {"type": "gelu"}]),
    "elu": ((5,), [{"type": "linear", "out_features": 4}, {"type": "elu"}]),
    "sigmoid": ((5,), [{"type": "linear", "out_features": 4}, {"type": "sigmoid"}]),
    "tanh": ((5,), [{"type": "linear", "out_features": 4}, {"type": "tanh"}]),
    "embedding": ((7,), [{"type": "embedding", "num_embeddings": 10, "embedding_dim": 3}, *HEAD]),
    "lstm": (SEQUENCE, [{"type": "lstm", "hidden_size": 4}]),
    "gru": (SEQUENCE, [{"type": "gru", "hidden_size": 3, "output": "sequence"}, *HEAD]),
    "residual": (
        IMAGE,
        [
            {
                "type": "residual",
                "layers": [
                    {"type": "conv2d", "out_channels": 6, "kernel_size": 3, "padding": 1},
                    {"type": "relu"},
                    {"type": "maxpool2d", "kernel_size": 2},
                ],
            },
            *HEAD,
        ],
    ),
}


def test_the_cases_cover_the_whole_catalogue() -> None:
    assert set(CASES) == {*KIND_BY_NAME, "residual"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_layer_type_builds_infers_its_input_and_trains_a_step(name: str) -> None:
    shape, layers = CASES[name]
    is_tokens = name == "embedding"
    dtype = torch.long if is_tokens else torch.float32
    plan = plan_network(LAYER_LIST.validate_python(layers), shape, LIMITS, dtype)
    assert plan.output_shape == (4,)
    torch.manual_seed(0)
    network = build_network(plan)
    x = torch.randint(0, 10, (8, *shape)) if is_tokens else torch.randn(8, *shape)
    outputs = network(x)
    assert tuple(outputs.shape[1:]) == plan.output_shape
    assert sum(p.numel() for p in network.parameters()) == plan.parameters
    before = [p.detach().clone() for p in network.parameters()]
    optimizer = build_optimizer(SPEC.options(lr=0.1), network.parameters())
    loss = build_loss("cross_entropy")(outputs.flatten(1), torch.randint(0, 4, (8,)))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, network.parameters(), strict=True))


def test_residual_projects_its_input_when_the_shapes_differ() -> None:
    _, layers = CASES["residual"]
    plan = plan_network(LAYER_LIST.validate_python(layers), IMAGE, LIMITS)
    residual = build_network(plan)[0]
    assert isinstance(residual.projection, nn.Conv2d)
    assert (residual.projection.in_channels, residual.projection.out_channels) == (3, 6)
    assert residual.projection.stride == (2, 2)
    assert plan.layers[0].output_shape == (6, 4, 4)


def refusal(params: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        SPEC.parse_options(params)
    return caught.value.errors()[0]["msg"]


CONV = {"type": "conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {
                "data": "cifar10",
                "layers": [
                    CONV,
                    {"type": "maxpool2d", "kernel_size": 4},
                    {"type": "flatten"},
                    {"type": "linear", "in_features": 1024, "out_features": 10},
                ],
            },
            "layers[3] (linear): expects 1024 input features, receives 4096 (64×8×8)",
        ),
        (
            {"data": "cifar10", "layers": [{**CONV, "in_channels": 1}]},
            "layers[0] (conv2d): expects 1 input channels, receives 3 (3×32×32)",
        ),
        (
            {"data": "mnist", "layers": [{"type": "flatten"}, CONV]},
            "layers[1] (conv2d): expects input of shape (channels, height, width), "
            "receives 784 (1×28×28)",
        ),
        (
            {
                "data": "mnist",
                "layers": [{"type": "flatten"}, {"type": "linear", "out_features": 3}],
            },
            "layers: the network outputs 3 values a sample; mnist needs 10 class scores",
        ),
        (
            {"data": "diabetes", "layers": [{"type": "linear", "out_features": 2}]},
            "diabetes needs 1 logit",
        ),
        (
            {"data": "mnist", "layers": [{**CONV, "kernel_size": 40}]},
            "layers[0] (conv2d): cannot take an input of shape 1×28×28",
        ),
        (
            {
                "data": "mnist",
                "layers": [{"type": "embedding", "num_embeddings": 9, "embedding_dim": 2}],
            },
            "layers[0] (embedding): cannot take an input of shape 1×28×28 (torch.float32)",
        ),
        (
            {
                "data": "mnist",
                "layers": [
                    {"type": "residual", "layers": [{"type": "flatten"}]},
                ],
            },
            "layers[0] (residual): its layers map 1×28×28 to 784",
        ),
        (
            {
                "data": "mnist",
                "layers": [
                    {"type": "flatten"},
                    {"type": "linear", "out_features": 100_000},
                    {"type": "linear", "out_features": 10},
                ],
            },
            "parameters, over the limit of 50,000,000",
        ),
        ({"data": "mnist", "layers": [{"type": "relu"}] * 65}, "more than 64 layers"),
        (
            {"data": "cifar10", "layers": [{"type": "upsample", "scale_factor": 8.0}, *[CONV] * 3]},
            "FLOPs a sample, over the limit",
        ),
        ({"data": "mnist", "layers": []}, "the list is empty"),
        ({"data": "diabetes", "loss": "cross_entropy"}, "loss 'cross_entropy' does not fit"),
        ({"data": "mnist", "layers": [{"type": "softmax"}]}, "does not match any of the expected"),
        ({"data": "mnist", "layers": [{"type": "linear"}]}, "Field required"),
    ],
)
def test_a_list_that_cannot_work_is_refused_naming_the_layer(
    params: dict[str, Any], message: str
) -> None:
    assert message in refusal(params)


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p["name"])
def test_each_preset_is_its_built_in_network_exactly(preset: dict[str, Any]) -> None:
    built_in = REGISTRY[preset["mirrors"]]
    torch.manual_seed(0)
    theirs = built_in.build(built_in.options())
    torch.manual_seed(0)
    ours = SPEC.build(SPEC.parse_options(preset["params"]))
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in theirs.parameters())
    assert SPEC.describe(SPEC.parse_options(preset["params"])).parameters == count
    for mine, built in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(mine, built)


def test_defaults_follow_the_data_sets_built_in_model() -> None:
    assert SPEC.options().layers == SPEC.parse_options(PRESETS[1]["params"]).layers
    diabetes = SPEC.parse_options({"data": "diabetes", "layers": PRESETS[0]["params"]["layers"]})
    assert (diabetes.lr, diabetes.momentum, diabetes.epochs, diabetes.loss) == (
        0.1,
        0.9,
        100,
        "bce",
    )
    assert SPEC.parse_options({"data": "cifar10", **PRESETS[3]["params"]}).momentum == 0.9
    assert SPEC.parse_options({"optimizer": "adam"}).momentum == 0.0


def test_a_job_runs_as_its_data_sets_spec() -> None:
    options = SPEC.parse_options({"data": "diabetes", "layers": PRESETS[0]["params"]["layers"]})
    spec = SPEC.for_options(options)
    assert (spec.name, spec.task, spec.augment) == ("sequential", "binary", None)
    assert SPEC.for_options(SPEC.options()).task == "multiclass"
    assert SPEC.for_options(SPEC.options()).decode_upload is REGISTRY["mnist_mlp"].decode_upload


def test_the_mnist_mlp_copy_takes_the_fused_step() -> None:
    options = SPEC.options()
    state = new_state(SPEC.for_options(options), options, CPU)
    x = torch.randn(64, 1, 28, 28)
    step = mlp_sgd_step(state.module, state.optimizer, build_loss(options.loss), None, x, 64)
    assert step is not None


def test_summary_counts_flops_and_checkpoint_bytes() -> None:
    summary = SPEC.describe(SPEC.parse_options(PRESETS[3]["params"]))
    assert summary.input_shape == [3, 32, 32] and summary.output_shape == [10]
    conv = summary.layers[0]
    assert conv.output_shape == [32, 32, 32] and conv.parameters == 3 * 32 * 25 + 32
    # 2 FLOPs a multiply-add: 32×32 positions × 32 filters × 75 weights.
    assert conv.flops == 2 * 32 * 32 * 32 * 75
    assert summary.flops == sum(layer.flops for layer in summary.layers)
    assert summary.checkpoint_bytes == 4 * summary.parameters


def test_mnist_cnn_copy_trains_on_the_files(mnist_root: DataRoot) -> None:
    params = {**PRESETS[2]["params"], "epochs": 2, "augment": True, "batch_size": 32}
    options = SPEC.parse_options(params)
    spec = SPEC.for_options(options)
    history = train(spec, options, spec.load_data(options, mnist_root))
    assert len(history) == 2 and "test_accuracy" in history[-1]


def test_resume_of_a_sequential_job_is_bit_exact(tmp_path: Path) -> None:
    layers = [
        {"type": "linear", "out_features": 16},
        {"type": "batchnorm1d"},
        {"type": "gelu"},
        {"type": "dropout", "p": 0.3},
        {"type": "residual", "layers": [{"type": "linear", "out_features": 16}, {"type": "tanh"}]},
        {"type": "linear", "out_features": 1},
    ]
    params = {"data": "diabetes", "layers": layers, "epochs": 6, "seed": 5, "optimizer": "adam"}
    _, straight, _ = run_fit("sequential", params)
    half, first, _ = run_fit("sequential", params, stop_after=3)
    saved = save_checkpoint(checkpoint_payload(half, "sequential"), tmp_path / "c.pt")
    options = SPEC.parse_options(params)
    resumed = new_state(SPEC.for_options(options), options, CPU)
    restore_state(resumed, load_checkpoint(saved.path, CPU, saved.sha256))
    _, second, _ = run_fit("sequential", params, state=resumed)
    assert first + second == straight and len(straight) == 6


def test_one_layer_option_is_set_by_its_path_and_dumped_back_at_the_top() -> None:
    nested = {"type": "residual", "layers": [{"type": "linear", "out_features": 8}]}
    params = {
        "data": "diabetes",
        "layers": [
            {"type": "linear", "out_features": 8},
            nested,
            {"type": "linear", "out_features": 1},
        ],
        "layers[0].out_features": 16,
        "layers[1].layers[0].out_features": 16,
    }
    options = SPEC.parse_options(params)
    assert options.layers[0].out_features == 16
    assert options.layers[1].layers[0].out_features == 16
    dumped = options.model_dump(mode="json")
    assert dumped["layers[0].out_features"] == 16 and "layer_options" not in dumped
    assert SPEC.parse_options(dumped) == options
    assert "no such layer" in refusal({**params, "layers[5].p": 0.5})


def test_an_lstm_reads_an_image_row_by_row() -> None:
    layers = [{"type": "lstm", "hidden_size": 8}, {"type": "linear", "out_features": 10}]
    summary = SPEC.describe(SPEC.parse_options({"data": "mnist", "layers": layers}))
    assert [layer.output_shape for layer in summary.layers] == [[8], [10]]
    # One LSTM layer: 4 gates of (28 inputs + 8 hidden) weights and two biases each.
    assert summary.layers[0].parameters == 4 * 8 * (28 + 8 + 2)
    network = SPEC.build(SPEC.parse_options({"data": "mnist", "layers": layers}))
    assert network(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_a_bidirectional_gru_last_step_is_each_directions_final_state() -> None:
    layers = [{"type": "gru", "hidden_size": 3, "bidirectional": True}]
    plan = plan_network(LAYER_LIST.validate_python(layers), SEQUENCE, LIMITS)
    assert plan.output_shape == (6,)
    recurrent = build_network(plan)[0]
    x = torch.randn(2, *SEQUENCE)
    _, final = recurrent.rnn(x)  # (directions, batch, hidden): each direction's last state
    assert torch.allclose(recurrent(x), torch.cat([final[0], final[1]], dim=1))


@pytest.mark.parametrize(
    "params",
    [{"data": {}}, {"data": ["mnist"]}, {"layer_options": [None, None]}, {"layer_options": "x"}],
)
def test_a_mistyped_data_or_layer_options_is_a_validation_error(params: dict) -> None:
    """Found by schemathesis: these raised TypeError (a 500) before the fields were checked."""
    with pytest.raises(ValidationError):
        REGISTRY["sequential"].parse_options(params, strict=True)
