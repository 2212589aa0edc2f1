"""Seeing inside a trained CNN: attributions, top patches, activation maximization, deep dream, capsules.

Every function takes a `Predictor` (`Predictor.from_run(folder)`), a run (`cnnlab.load(folder)`) or any nn.Module,
and images in any form the predictor takes (files, uint8 pixels, float model inputs). Results are arrays;
`explain` adds the picture.

    predictor = Predictor.from_run("runs/lesson-cnn-cifar10")
    attribute(predictor, images, "gradcam")                  # [N, H, W] heat maps for the predicted classes
    top_patches(predictor, dataset_images, "conv2")          # Zeiler & Fergus: what excites each channel
    maximize(predictor, "conv3", channel=5)                  # the picture that drives a channel up
    deepdream(predictor, images, "conv2")                    # amplify what a layer sees
    capsule_dimensions(predictor, image)                     # CapsNet: what each capsule dimension encodes
    explain(predictor, "gradcam", ["cat.png"])               # arrays, printed findings and the figure
"""

__all__ = [
    "EXPLANATIONS",
    "METHODS",
    "Explanation",
    "Maximized",
    "ReceptiveField",
    "TopPatches",
    "attribute",
    "capsule_dimensions",
    "class_index",
    "deepdream",
    "explain",
    "gradient_box",
    "maximize",
    "receptive_field",
    "top_patches",
]
_HOMES = {
    "ascent": ("Maximized", "deepdream", "maximize"),
    "attributions": ("attribute", "class_index"),
    "capsules": ("capsule_dimensions",),
    "explanation": ("Explanation", "explain"),
    "methods": ("EXPLANATIONS", "METHODS"),
    "patches": ("TopPatches", "top_patches"),
    "receptive": ("ReceptiveField", "gradient_box", "receptive_field"),
}


def __getattr__(name: str):
    # imported on first use: the command line reads the method names from here without loading torch
    for module, names in _HOMES.items():
        if name in names:
            import importlib

            return getattr(importlib.import_module(f"cnnlab.inspect.{module}"), name)
    raise AttributeError(f"module 'cnnlab.inspect' has no attribute {name!r}")
