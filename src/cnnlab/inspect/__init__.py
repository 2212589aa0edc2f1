"""Seeing inside a trained CNN: its layers, filters, feature maps, attributions, top patches and dreams.

Every function takes a trained run (`load_run(folder)`) or any nn.Module, and images as arrays: uint8 pixels
(normalized as the run was trained) or float model inputs, [N, C, H, W] or one [C, H, W]. Results are arrays.

    trained = load_run("runs/lesson-cnn-cifar10")
    layer_table(trained.model, trained.input_shape)        # names, types, output shapes
    attribute(trained, images, "gradcam")                  # [N, H, W] heat maps for the predicted classes
    activations(trained, images, "conv2")                  # [N, C, h, w] feature maps
    top_patches(trained, dataset_images, "conv2")          # Zeiler & Fergus: what excites each channel
    maximize(trained, "conv3", channel=5)                  # the picture that drives a channel up
    deepdream(trained, images, "conv2")                    # amplify what a layer sees
    capsule_dimensions(trained, image)                     # CapsNet: what each capsule dimension encodes
"""
from cnnlab.inspect.attributions import METHODS, attribute, class_index
from cnnlab.inspect.layers import Layer, activations, default_layer, first_layer_filters, layer_table
from cnnlab.inspect.ascent import Maximized, deepdream, maximize
from cnnlab.inspect.capsules import capsule_dimensions
from cnnlab.inspect.patches import TopPatches, top_patches
from cnnlab.inspect.receptive import ReceptiveField, gradient_box, receptive_field

__all__ = ["METHODS", "Layer", "Maximized", "ReceptiveField", "TopPatches", "activations", "attribute",
           "capsule_dimensions", "class_index", "deepdream", "default_layer", "first_layer_filters", "gradient_box",
           "layer_table", "maximize", "receptive_field", "top_patches"]
