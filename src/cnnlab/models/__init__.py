"""The model registry, and the recipes that train each model. Importing this package registers every model."""

from cnnlab.models import capsnet, cifar_fast, classic, cnn, mlp  # noqa: F401  (registers)
from cnnlab.models.recipe import Recipe
from cnnlab.models.registry import MODELS, ModelSpec, count_parameters, create_model, get_spec, register
from cnnlab.models.summary import model_table

__all__ = ["MODELS", "ModelSpec", "Recipe", "count_parameters", "create_model", "get_spec", "model_table", "register"]
