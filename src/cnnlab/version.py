"""The version of cnnlab, recorded in every run record."""

__version__ = "0.1.0"
