"""Training: recipes, the loop, metrics, checkpoints and resume."""
