"""The tabular MLP with its preprocessing inside: imputation, standardisation, encodings.

Its buffers hold what was fitted on the training split (numeric means and stds, a
regression target's mean and std), so a checkpoint or an export serves raw rows alone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from torchkiln.models.common.tabular_data import NumericStats, TablePlan

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}
# Up to this many categories (with "unknown") a column is one-hot; more: an embedding.
MAX_ONE_HOT = 16
MAX_EMBEDDING = 16


class TableEncoder(nn.Module):
    """Raw feature floats → the MLP's input: numeric columns imputed with the training mean
    and standardised, categorical indices one-hot or embedded."""

    def __init__(self, plan: TablePlan) -> None:
        super().__init__()
        numeric = [j for j, c in enumerate(plan.features) if c.kind == "numeric"]
        self.register_buffer("numeric_index", torch.tensor(numeric, dtype=torch.long))
        self.register_buffer("mean", torch.zeros(len(numeric)))
        self.register_buffer("std", torch.ones(len(numeric)))
        # Every column numeric, in order: no gather (the common case, and the fast one).
        self.all_numeric = numeric == list(range(len(plan.features)))
        self.categorical: list[tuple[int, int]] = []
        encoders: list[nn.Module] = []
        width = len(numeric)
        for j, column in enumerate(plan.features):
            if column.kind != "categorical":
                continue
            size = len(column.categories) + 1  # the last index: unknown or missing
            self.categorical.append((j, size))
            if size <= MAX_ONE_HOT:
                encoders.append(OneHot(size))
                width += size
            else:
                dim = min(MAX_EMBEDDING, (size + 1) // 2)
                encoders.append(nn.Embedding(size, dim))
                width += dim
        self.encoders = nn.ModuleList(encoders)
        self.width = width

    def fit(self, stats: NumericStats) -> None:
        self.mean.copy_(stats.mean)
        self.std.copy_(stats.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        numeric = x if self.all_numeric else x.index_select(1, self.numeric_index)
        numeric = (torch.where(torch.isnan(numeric), self.mean, numeric) - self.mean) / self.std
        if not self.categorical:
            return numeric
        parts = [numeric]
        for (j, size), encoder in zip(self.categorical, self.encoders, strict=True):
            index = torch.nan_to_num(x[:, j], nan=size - 1).long().clamp(0, size - 1)
            parts.append(encoder(index))
        return torch.cat(parts, dim=1)


class OneHot(nn.Module):
    """An index → its one-hot row (a lookup in a fixed identity: exports as a gather)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.register_buffer("eye", torch.eye(size), persistent=False)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.eye[index]


class EncodedTable(nn.Module):
    """The encoder, then a body made for its width (``make_body(width)``), then the outputs
    (logits, or the regression value in the target's own units)."""

    def __init__(self, plan: TablePlan, make_body: Callable[[int], nn.Module]) -> None:
        super().__init__()
        self.encoder = TableEncoder(plan)
        self.mlp = make_body(self.encoder.width)
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))
        self.is_regression = plan.task == "regression"

    def fit(self, stats: NumericStats, target: tuple[float, float] | None) -> None:
        """Store the training split's statistics (before training starts)."""
        self.encoder.fit(stats)
        if target is not None:
            self.target_mean.fill_(target[0])
            self.target_std.fill_(target[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.mlp(self.encoder(x))
        return out * self.target_std + self.target_mean if self.is_regression else out


def outputs_of(plan: TablePlan) -> int:
    """1 logit (binary), one score a class (multiclass) or 1 value (regression)."""
    return 1 if plan.task in ("binary", "regression") else len(plan.classes)


def encoded_width(plan: TablePlan) -> int:
    """The encoder's output width, without making it."""
    width = 0
    for column in plan.features:
        size = len(column.categories) + 1
        if column.kind != "categorical":
            width += 1
        else:
            width += size if size <= MAX_ONE_HOT else min(MAX_EMBEDDING, (size + 1) // 2)
    return width


class TabularNetwork(EncodedTable):
    """Encoder, then ``hidden`` layers of ``activation``, then the outputs."""

    def __init__(self, plan: TablePlan, hidden: list[int], activation: str, dropout: float) -> None:
        def mlp(width: int) -> nn.Module:
            layers: list[nn.Module] = []
            for size in hidden:
                layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
                if dropout:
                    layers.append(nn.Dropout(dropout))
                width = size
            layers.append(nn.Linear(width, outputs_of(plan)))
            return nn.Sequential(*layers)

        super().__init__(plan, mlp)
