"""`cnnlab serve`: the explorer in the browser. A FastAPI app whose every panel is a plain HTML/JS page
(`static/`, no build step, no CDN) over JSON endpoints, one module per panel:

- `explore`:  look inside a trained model: probabilities, every layer's feature maps, attributions (Predictor);
- `lessons`:  the kernel playground, convolution arithmetic, conv -> ReLU -> pool on a picture (cnnlab.filters);
- `monitor`:  runs, live curves, confusion matrix with its images, runs compared (the run record);
- `datasets`: samples per class and the augmentation preview.

`store.RunStore` is the only way a request reaches a file: runs are named, never addressed by path.
"""

from cnnlab.serve.app import create_app, serve

__all__ = ["create_app", "serve"]
