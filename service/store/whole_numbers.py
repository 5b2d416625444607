"""Whole numbers as JSON Schema counts them, for the strict request models.

The schema says ``"type": "integer"``, which JSON Schema meets with ``7`` and ``7.0`` alike;
strict pydantic refused ``7.0``. ``"7"`` and ``true`` stay refused.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator


def _integral_float(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeNumber = Annotated[int, BeforeValidator(_integral_float)]
