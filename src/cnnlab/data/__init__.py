"""Data: the data sets by name, read once into uint8 tensors; batches made and normalized on the training device."""

from cnnlab.data.batches import Batches
from cnnlab.data.datasets import DATASETS, Dataset, ImageSet, channel_stats, load_dataset, split
from cnnlab.data.preprocess import Preprocess

__all__ = ["DATASETS", "Batches", "Dataset", "ImageSet", "Preprocess", "channel_stats", "load_dataset", "split"]
