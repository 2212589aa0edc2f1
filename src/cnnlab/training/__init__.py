"""Training: the run config and its checks, the loop, metrics, checkpoints, the run record, resume."""
