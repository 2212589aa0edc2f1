"""The model registry, and the recipes that train each model.

Recipes import without torch: the command line generates its training flags from them and starts at once. The
registry and every model, which need torch, are imported (and so registered) on the first use of one of their
names, e.g. `from cnnlab.models import get_spec`.
"""

from cnnlab.models.recipe import Recipe

REGISTRY = ("MODELS", "ModelSpec", "count_parameters", "create_model", "get_spec", "register")
__all__ = [*REGISTRY, "Recipe", "model_table"]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module 'cnnlab.models' has no attribute {name!r}")
    from cnnlab.models import capsnet, cifar_fast, classic, cnn, mlp, registry, summary  # noqa: F401  (registers)

    globals().update({n: getattr(registry, n) for n in REGISTRY}, model_table=summary.model_table)
    return globals()[name]
