"""Tensor signatures shared by the catalogue: feature rows in, and classifier outputs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from torchkiln.models.common.registry import Task, TensorSignature, TensorSpec


def feature_tensors(name: str, width: int, task: Task, output: str = "y") -> TensorSignature:
    """``name``: FP32 rows of ``width`` features. Regression answers ``output`` (-1, 1); a
    binary model answers ``probability`` (sigmoid of its logit) and ``label`` (0 or 1)."""
    if task == "regression":
        outputs = (TensorSpec(output, "FP32", (-1, 1)),)

        def from_outputs(raw: torch.Tensor) -> dict[str, torch.Tensor]:
            return {output: raw}

    else:
        outputs = (TensorSpec("probability", "FP32", (-1, 1)), TensorSpec("label", "INT64", (-1,)))

        def from_outputs(raw: torch.Tensor) -> dict[str, torch.Tensor]:
            probability = torch.sigmoid(raw)
            return {"probability": probability, "label": (probability > 0.5).long().view(-1)}

    return TensorSignature(
        inputs=(TensorSpec(name, "FP32", (-1, width)),),
        outputs=outputs,
        to_batch=lambda tensors: tensors[name].float(),
        from_outputs=from_outputs,
        classes=None if task == "regression" else ("0", "1"),
    )


def image_tensors(
    shape: tuple[int, ...],
    to_batch: Callable[[torch.Tensor], torch.Tensor],
    classes: Sequence[str] | None = None,
    class_count: int = 10,
) -> TensorSignature:
    """``image``: UINT8 grey or RGB levels (-1, *shape), ``to_batch`` normalises them.
    Answers ``probabilities`` (softmax), ``label`` (the argmax) and, with ``classes``,
    ``class`` (its name)."""
    count = len(classes) if classes is not None else class_count
    outputs = [
        TensorSpec("probabilities", "FP32", (-1, count)),
        TensorSpec("label", "INT64", (-1,)),
    ]
    if classes is not None:
        outputs.append(TensorSpec("class", "BYTES", (-1,)))

    def from_outputs(raw: torch.Tensor) -> dict[str, torch.Tensor]:
        probabilities = torch.softmax(raw.float(), dim=1)
        return {"probabilities": probabilities, "label": probabilities.argmax(dim=1)}

    def strings(named: dict[str, torch.Tensor]) -> dict[str, list[str]]:
        assert classes is not None
        return {"class": [classes[i] for i in named["label"].tolist()]}

    return TensorSignature(
        inputs=(TensorSpec("image", "UINT8", (-1, *shape)),),
        outputs=tuple(outputs),
        to_batch=lambda tensors: to_batch(tensors["image"].float() / 255.0),
        from_outputs=from_outputs,
        strings=strings if classes is not None else None,
        classes=tuple(classes) if classes is not None else tuple(map(str, range(count))),
    )
