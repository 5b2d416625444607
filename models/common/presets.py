"""The built-in networks written as ``sequential`` layer lists: starting points to edit.

Each mirrors its built-in model at default options layer for layer (dropout 0 layers left
out), so it has the same parameters and, for the same seed, the same initial weights.
"""

from __future__ import annotations

from typing import Any


def _mlp(widths: list[int], activation: str) -> list[dict[str, Any]]:
    layers: list[dict[str, Any]] = []
    for width in widths[:-1]:
        layers += [{"type": "linear", "out_features": width}, {"type": activation}]
    return [*layers, {"type": "linear", "out_features": widths[-1]}]


def _conv_blocks(channels: list[int], kernel_size: int) -> list[dict[str, Any]]:
    layers: list[dict[str, Any]] = []
    for out_channels in channels:
        layers += [
            {
                "type": "conv2d",
                "out_channels": out_channels,
                "kernel_size": kernel_size,
                "padding": kernel_size // 2,
            },
            {"type": "relu"},
            {"type": "maxpool2d", "kernel_size": 2},
        ]
    return layers


PRESETS: tuple[dict[str, Any], ...] = (
    {
        "name": "diabetes_mlp",
        "mirrors": "diabetes",
        "summary": "8→6→4→1 sigmoid MLP on the diabetes table.",
        "params": {"data": "diabetes", "layers": _mlp([6, 4, 1], "sigmoid")},
    },
    {
        "name": "mnist_mlp",
        "mirrors": "mnist_mlp",
        "summary": "784-512-256-128-64-10 ReLU MLP on MNIST.",
        "params": {
            "data": "mnist",
            "layers": [{"type": "flatten"}, *_mlp([512, 256, 128, 64, 10], "relu")],
        },
    },
    {
        "name": "mnist_cnn",
        "mirrors": "mnist_cnn",
        "summary": "Two conv3×3/ReLU/max-pool blocks (32, 64 channels), 128-unit classifier.",
        "params": {
            "data": "mnist",
            "layers": [*_conv_blocks([32, 64], 3), {"type": "flatten"}, *_mlp([128, 10], "relu")],
        },
    },
    {
        "name": "cifar10_cnn",
        "mirrors": "cifar10_cnn",
        "summary": "Three conv5×5/ReLU/max-pool blocks (32, 32, 64 channels), 1024→64→10.",
        "params": {
            "data": "cifar10",
            "layers": [
                *_conv_blocks([32, 32, 64], 5),
                {"type": "flatten"},
                *_mlp([64, 10], "relu"),
            ],
        },
    },
)
