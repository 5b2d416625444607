"""Every model's declared answer is what its postprocess returns, for its own example inputs."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import TypeAdapter

from torchkiln.models import REGISTRY
from torchkiln.models.common.images import ImageRejected
from torchkiln.models.common.presets import PRESETS
from torchkiln.models.common.registry import ModelSpec

# Sequential answers as the built-in model of its data set: one job per data set.
SEQUENTIAL_DATA = {preset["params"]["data"]: preset["params"] for preset in PRESETS}


def served_specs() -> list[tuple[str, ModelSpec, dict[str, Any]]]:
    """(label, the spec a job serves with, its params) for every model and data set."""
    cases = []
    for name, spec in sorted(REGISTRY.items()):
        if name != "sequential":
            # Models on uploaded datasets answer for their example job's dataset.
            params = spec.example_options().model_dump(mode="json")
            cases.append((name, spec.for_options(spec.parse_options(params)), params))
    sequential = REGISTRY["sequential"]
    for data, params in sorted(SEQUENTIAL_DATA.items()):
        spec = sequential.for_options(sequential.parse_options(params))
        cases.append((f"sequential-{data}", spec, params))
    return cases


@pytest.mark.parametrize(
    ("label", "spec", "params"), served_specs(), ids=[case[0] for case in served_specs()]
)
def test_postprocess_returns_the_declared_answer(
    label: str, spec: ModelSpec, params: dict[str, Any]
) -> None:
    network = spec.build(spec.parse_options(params)).eval()
    examples = spec.inputs.model_json_schema()["examples"]
    answered = 0
    for example in examples:
        try:
            batch = spec.preprocess(spec.inputs.model_validate(example))
        except ImageRejected:  # sequential: another data set's body, refused by this job
            continue
        with torch.inference_mode():
            answer = spec.postprocess(network(batch))
        parsed = TypeAdapter(spec.answer).validate_python(answer, strict=True)
        # Nothing the declaration leaves out: the parsed answer dumps back to the same dict.
        assert parsed.model_dump() == answer
        answered += 1
    assert answered == (1 if label.startswith("sequential-") else len(examples))


def test_sequential_declares_every_data_sets_answer() -> None:
    # Built-in data answers as its model does; an uploaded dataset as image_classifier or tabular.
    members = set(REGISTRY["sequential"].answer_models())
    built_in = {REGISTRY[name].answer for name in ("mnist_mlp", "cifar10_cnn", "diabetes")}
    uploaded = {REGISTRY["image_classifier"].answer, *REGISTRY["tabular"].answer_models()}
    assert members == built_in | uploaded
