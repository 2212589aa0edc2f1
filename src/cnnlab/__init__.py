"""cnnlab: learn, train, inspect and visualize convolutional neural networks for image classification."""
__version__ = "0.1.0"
