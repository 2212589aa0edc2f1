"""The famous networks as the world trained them: torchvision's ImageNet weights, fetched once and checked.

    path = fetch(IMAGENET_WEIGHTS["resnet18"])          # ~/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth
    model, weights = imagenet_model("resnet18")          # 1000 classes, ImageNet's weights, eval-ready

Files live where torch keeps them ($TORCH_HOME/hub/checkpoints, else $XDG_CACHE_HOME/torch/..., else
~/.cache/torch/...) under torchvision's own names, so a file a user already has is found and not fetched again.
The hex part of each name is the start of the file's SHA-256: every file is checked against it before it is read,
a download is written beside its final name and renamed only once whole and checked, and the file is read with
`weights_only=True`. `CNNLAB_WEIGHTS_URL` replaces the download address (a mirror, or a test's local server).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from cnnlab.errors import CnnlabError

TORCHVISION_URL = "https://download.pytorch.org/models/"
URL_SETTING = "CNNLAB_WEIGHTS_URL"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHUNK = 1 << 20


@dataclass(frozen=True)
class PretrainedWeights:
    """One published weights file and what a model loaded from it expects: the description travels as data."""

    model: str  # cnnlab's (and torchvision's) model name
    file: str  # torchvision's file name; the hex after the last '-' starts its SHA-256
    top1: float  # ImageNet validation top-1 accuracy (%), as torchvision reports it
    resize: int = 256  # evaluation view: shorter side to `resize`, then the central `crop` square
    crop: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    source: str = "imagenet"  # the data set, and so the class names

    @property
    def hash_prefix(self) -> str:
        return re.search(r"-([0-9a-f]{6,})\.pth$", self.file)[1]

    @property
    def url(self) -> str:
        base = os.environ.get(URL_SETTING) or TORCHVISION_URL
        return base.rstrip("/") + "/" + self.file

    @property
    def classes(self) -> list[str]:
        return imagenet_classes()


# torchvision's IMAGENET1K_V1 files (the ones its `pretrained=True` always meant): model, file, top-1 from its tables
PUBLISHED = """
alexnet   alexnet-owt-7be5be79.pth 56.522
vgg11     vgg11-8a719046.pth       69.020
vgg11_bn  vgg11_bn-6002323d.pth    70.370
vgg13     vgg13-19584684.pth       69.928
vgg13_bn  vgg13_bn-abd245e5.pth    71.586
vgg16     vgg16-397923af.pth       71.592
vgg16_bn  vgg16_bn-6c64b313.pth    73.360
vgg19     vgg19-dcbb9e9d.pth       72.376
vgg19_bn  vgg19_bn-c79401a0.pth    74.218
resnet18  resnet18-f37072fd.pth    69.758
resnet34  resnet34-b627a593.pth    73.314
resnet50  resnet50-0676ba61.pth    76.130
"""
IMAGENET_WEIGHTS: dict[str, PretrainedWeights] = {
    model: PretrainedWeights(model, file, float(top1))
    for model, file, top1 in (line.split() for line in PUBLISHED.strip().splitlines())
}


@cache
def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet-1k class names, in the order of the models' outputs (0 tench ... 999 toilet paper)."""
    text = resources.files("cnnlab.models").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def imagenet_weights(model: str) -> PretrainedWeights:
    """The description of `model`'s ImageNet weights; a model without published ones is refused in a line."""
    if model not in IMAGENET_WEIGHTS:
        raise CnnlabError(f"{model} has no ImageNet weights in cnnlab; these have: {', '.join(IMAGENET_WEIGHTS)}")
    return IMAGENET_WEIGHTS[model]


def cache_folder() -> Path:
    """Where torch.hub keeps downloaded weights: $TORCH_HOME/hub/checkpoints, torch's default under the XDG cache."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "torch"
    )
    return Path(torch_home) / "hub" / "checkpoints"


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(weights: PretrainedWeights, progress: bool = True, log=print) -> Path:
    """The checked weights file in the cache, downloaded first if it is not there; returns its path."""
    path = cache_folder() / weights.file
    if path.is_file():
        check_hash(path, weights, f"{path} (found in the cache)")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    log(f"downloading {weights.url} to {path}")
    partial = download(weights, path.parent, progress)
    try:
        check_hash(partial, weights, f"{weights.url} (downloaded)")
        os.replace(partial, path)  # only a whole, checked file ever has the final name
    finally:
        partial.unlink(missing_ok=True)
    return path


def check_hash(path: Path, weights: PretrainedWeights, what: str) -> str:
    """The file's SHA-256 if it starts as the file's name says; otherwise the file is removed and refused."""
    digest = sha256(path)
    if not digest.startswith(weights.hash_prefix):
        path.unlink(missing_ok=True)
        raise CnnlabError(
            f"{what}: its SHA-256 starts {digest[: len(weights.hash_prefix)]}, not "
            f"{weights.hash_prefix} as {weights.file} should (corrupt or incomplete): the file was "
            "removed; run again to download it anew"
        )
    return digest


def download(weights: PretrainedWeights, folder: Path, progress: bool) -> Path:
    """Stream the file into a temporary file in `folder` (same disk: the rename is atomic); a failure removes it."""
    import http.client
    import urllib.error
    import urllib.request

    from tqdm import tqdm

    fd, name = tempfile.mkstemp(prefix=weights.file + ".", suffix=".partial", dir=folder)
    partial = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(weights.url, timeout=60) as response:
            size = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc=weights.file, disable=not progress) as bar:
                written = 0
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
        if size is not None and written != size:
            raise CnnlabError(f"{weights.url}: the download stopped after {written:,} of {size:,} bytes; run again")
        return partial
    except urllib.error.HTTPError as e:
        partial.unlink(missing_ok=True)
        raise CnnlabError(
            f"cannot download {weights.url} (HTTP {e.code} {e.reason}); {place_by_hand(weights)}"
        ) from None
    except http.client.HTTPException:  # the server closed the connection before the end of the body
        partial.unlink(missing_ok=True)
        raise CnnlabError(f"{weights.url}: the download was cut off before the end; run again") from None
    except (urllib.error.URLError, OSError) as e:
        partial.unlink(missing_ok=True)
        reason = getattr(e, "reason", None) or e
        raise CnnlabError(f"cannot download {weights.url} ({reason}); {place_by_hand(weights)}") from None
    except BaseException:  # Ctrl-C, a cut connection: nothing half-written stays behind
        partial.unlink(missing_ok=True)
        raise


def place_by_hand(weights: PretrainedWeights) -> str:
    return f"offline? download it elsewhere and put it in {cache_folder()}/ as {weights.file}"


@dataclass(frozen=True)
class LoadedWeights:
    """Where a model's starting weights came from: what a run's record keeps."""

    file: str
    sha256: str
    url: str
    note: str  # what was loaded, in a line


def load_imagenet_weights(model, name: str, progress: bool = True, log=print) -> LoadedWeights:
    """Put `name`'s ImageNet weights into `model` (a different class count: all but the last layer)."""
    from cnnlab.models.weights import load_torchvision_weights

    weights = imagenet_weights(name)
    path = fetch(weights, progress, log)
    digest = sha256(path)
    note = load_torchvision_weights(model, path)
    return LoadedWeights(weights.file, digest, weights.url, note)


def imagenet_model(name: str, progress: bool = True, log=print):
    """`name` with 1000 classes and its ImageNet weights, in eval mode; returns (model, its PretrainedWeights)."""
    from cnnlab.models import create_model  # the package: it registers every model

    weights = imagenet_weights(name)
    model = create_model(name, in_channels=3, num_classes=1000, image_size=weights.crop)
    load_imagenet_weights(model, name, progress, log)
    return model.eval(), weights


def evaluation_view(image, resize: int, crop: int):
    """torchvision's evaluation transform in one resample: shorter side to `resize`, the central `crop` square."""
    from PIL import Image

    w, h = image.size
    side = min(w, h) * crop / resize
    left, top = (w - side) / 2, (h - side) / 2
    return image.resize((crop, crop), Image.BILINEAR, box=(left, top, left + side, top + side))
