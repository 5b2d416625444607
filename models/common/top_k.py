"""Top-k answers of a classifier's logits, shared by the image models' postprocess."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def top_k_predictions(
    outputs: torch.Tensor, describe: Callable[[int], dict[str, Any]], k: int = 3
) -> list[dict[str, Any]]:
    """Per sample: the best class (``describe(index)`` names it), its probability, the top k."""
    probabilities = torch.softmax(outputs.float(), dim=1)
    top_p, top_i = probabilities.topk(k, dim=1)
    return [
        {
            **describe(indices[0]),
            "probability": ps[0],
            f"top{k}": [
                {**describe(i), "probability": p} for i, p in zip(indices, ps, strict=True)
            ],
        }
        for indices, ps in zip(top_i.tolist(), top_p.tolist(), strict=True)
    ]
