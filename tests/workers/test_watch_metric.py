"""``watch`` names a metric the model records, or the job fails saying which it records."""

from __future__ import annotations

import pytest
import torch

from torchkiln.models import REGISTRY
from torchkiln.models.common.watched_metric import Watch
from torchkiln.workers.best_keeper import BestKeeper
from torchkiln.workers.early_stopping import MetricMissing
from torchkiln.workers.training import new_state


def test_an_unrecorded_watch_metric_is_refused_like_early_stoppings() -> None:
    spec = REGISTRY["linear"]
    state = new_state(spec, spec.parse_options({}), torch.device("cpu"))
    keeper = BestKeeper(Watch(metric="val_los"))
    with pytest.raises(MetricMissing, match="watch metric 'val_los' is not recorded"):
        keeper.observe(state, {"train_loss": 1.0, "val_loss": 1.0}, spec.name)
    BestKeeper(Watch(metric="val_loss")).observe(state, {"val_loss": 1.0}, spec.name)
