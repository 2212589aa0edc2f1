"""The model registry. Importing this package registers every model."""
from cnnlab.models import capsnet, classic, cnn, mlp  # noqa: F401  (registers)
from cnnlab.models.registry import MODELS, ModelSpec, count_parameters, create_model, get_spec, register

__all__ = ["MODELS", "ModelSpec", "count_parameters", "create_model", "get_spec", "register"]
