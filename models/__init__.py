"""The torchkiln model catalogue. Importing the package registers every model module in it."""

from torchkiln.models.common.registry import REGISTRY, ModelSpec, load_catalogue

load_catalogue()

__all__ = ["REGISTRY", "ModelSpec"]
