"""The data sets' names, torch-free: the command line offers them as choices without importing PyTorch.
cnnlab.data.datasets holds their loaders."""

DATASETS = ("mnist", "fashion-mnist", "cifar10", "imagefolder")
DOWNLOADABLE = ("mnist", "fashion-mnist", "cifar10")  # found or fetched by name; imagefolder is --data-root itself
