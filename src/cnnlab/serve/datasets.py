"""Endpoints of the data panel: the data sets cnnlab finds, a grid of samples per class, and the augmentation
preview of `cnnlab augment-preview`.

The data sets looked for are cnnlab's own in its usual places (data/sources.py: $CNNLAB_DATA, the user cache,
/usr/share/datasets) and the ones the runs under RUNS_DIR were trained on, where they found them. Each is named by
an id this module hands out (`mnist`, or `mnist@HASH` for the place a run found it: a hash of that run's data
root, so the id stays when runs come and go), never by a path: a request can
read no other files. Nothing is downloaded here; a data set not found is listed with the command that fetches it.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from cnnlab.data import DATASETS, Dataset, load_dataset
from cnnlab.data.augment import OPS, PRESETS, parse_augment, preview
from cnnlab.data.sources import search_roots
from cnnlab.errors import CnnlabError, within
from cnnlab.plots.base import to_display
from cnnlab.serve.payloads import bounds, png_data_url
from cnnlab.serve.store import NotFound, RunStore, get_store

router = APIRouter(prefix="/datasets", tags=["datasets"])

MAX_CLASSES_SHOWN = 50  # an image folder of a thousand classes: the grid shows the first fifty
THUMBNAIL_SIDE = 96  # larger images (photo folders) are shrunk for the grid


@dataclass(frozen=True)
class Place:
    """Where one data set is looked for: its name, the run's --data-root (None: the usual places), image size."""

    name: str
    data_root: str | None = None
    image_size: int | None = None


def place_id(place: Place) -> str:
    """A place's id, from what it is and nothing else: the same id however many runs are added or removed
    (`mnist`, or `mnist@` and a hash of its data root and image size)."""
    if place == Place(place.name):
        return place.name
    where = hashlib.sha256(repr((place.data_root, place.image_size)).encode()).hexdigest()[:10]
    return f"{place.name}@{where}"


def places(store: RunStore) -> dict[str, tuple[Place, list[str]]]:
    """id -> (where to look, the runs trained on it): the usual places first, then each run's own data root."""
    found = {name: (Place(name), []) for name in DATASETS if name != "imagefolder"}  # that one needs a root
    for run in sorted(store.names()):
        try:
            config = store.record(run).config
        except CnnlabError:
            continue  # a run whose run.json cannot be read names no data set
        place = Place(config.dataset, config.data_root, config.image_size)
        found.setdefault(place_id(place), (place, []))[1].append(run)
    return found


_loading = threading.Lock()  # one data set read at a time: two at once would double the memory for nothing


def searched(place: Place) -> tuple[str, ...]:
    """The folders cnnlab searches for it now: what was found is kept per place *and* these ($CNNLAB_DATA may
    change)."""
    return tuple(map(str, search_roots(place.data_root)))


@lru_cache(maxsize=2)  # the data sets in use; the listing keeps only their summaries
def _load(place: Place, roots: tuple[str, ...]) -> Dataset:
    """`roots` only keys the cache: load_dataset searches them itself."""
    return load_dataset(place.name, data_root=place.data_root, download=False, image_size=place.image_size)


def load(place: Place) -> Dataset:
    with _loading:
        return _load(place, searched(place))


_summaries: dict[tuple, dict] = {}


def summary(place: Place) -> dict:
    """Where a data set was found, its sizes and classes (kept once found); or why not and how to get it."""
    key = (place, searched(place))
    if key not in _summaries:
        try:
            data = load(place)
        except CnnlabError as error:
            return {"available": False, "reason": str(error), "get": how_to_get(place)}
        _summaries[key] = {
            "available": True,
            "source": data.source,
            "classes": data.classes,
            "shape": list(data.shape),
            "train_size": len(data.train),
            "test_size": len(data.test),
        }
    return _summaries[key]


def how_to_get(place: Place) -> str:
    """The command that fetches a data set not found (never run by the server: it downloads nothing)."""
    if place.name == "imagefolder":
        return f"put the image folder back at {place.data_root}"
    return f"cnnlab datasets {place.name} --download"


@router.get("")
def datasets(store: RunStore = Depends(get_store)) -> list[dict]:
    """The data sets cnnlab finds in its usual places, and those the runs under RUNS_DIR used, where they found
    them: sizes, image shape and classes; or, when not found, where cnnlab looked and the command that fetches it.
    Two ids that turn out to be the same files are listed once."""
    listed, seen = [], {}
    for key, (place, runs) in places(store).items():
        entry = {"id": key, "name": place.name, "runs": runs, **summary(place)}
        same = seen.get((place.name, entry.get("source")))
        if entry["available"] and same is not None:
            same["runs"] += runs
            continue
        seen[(place.name, entry.get("source"))] = entry
        listed.append(entry)
    # a data set not found in the usual places but found where a run found it is listed once, as found
    found = {entry["name"] for entry in listed if entry["available"]}
    return [entry for entry in listed if entry["available"] or entry["runs"] or entry["name"] not in found]


def dataset(store: RunStore, key: str) -> Dataset:
    """The data set of an id from the listing (never a path), read from where it was found."""
    found = places(store).get(key)
    if found is None:
        raise NotFound(f"no data set {key!r}; the ids are those GET /api/datasets lists")
    try:
        return load(found[0])
    except CnnlabError as error:  # not found: its first line, and the command that fetches it
        raise CnnlabError(f"{str(error).splitlines()[0]}; get it with: {how_to_get(found[0])}") from None


def thumbnail(image: torch.Tensor) -> str:
    """A uint8 [C, H, W] image as a PNG data URL, shrunk to THUMBNAIL_SIDE when larger."""
    from PIL import Image

    picture = Image.fromarray(to_display(image.numpy())[0])
    picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    return png_data_url(np.asarray(picture))


@router.get("/samples")
def samples(
    dataset_id: str = Query(alias="dataset", description="an id from GET /api/datasets"),
    per_class: int = Query(8, description="images per class, 1 to 32", json_schema_extra=bounds(1, 32)),
    split: str = Query("train", description="train or test", json_schema_extra={"enum": ["train", "test"]}),
    seed: int = Query(0, description="which images: another seed, others", json_schema_extra=bounds(0, 2**31 - 1)),
    store: RunStore = Depends(get_store),
) -> dict:
    """`per_class` images of each class, drawn at random (seeded) from the split: one row per class."""
    within(per_class, "per_class", 1, 32, "from 1 to 32")
    within(seed, "seed", 0, 2**31 - 1, "a whole number from 0 to 2^31 - 1")
    if split not in ("train", "test"):
        raise CnnlabError(f"split {split!r}: use train or test")
    data = dataset(store, dataset_id)
    part = data.train if split == "train" else data.test
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for k, name in enumerate(data.classes[:MAX_CLASSES_SHOWN]):
        members = (part.labels == k).nonzero().flatten()
        chosen = members[torch.randperm(len(members), generator=generator)[:per_class]]
        rows.append({"class": name, "count": len(members), "images": [thumbnail(part.pixels(i)) for i in chosen]})
    return {
        "dataset": dataset_id,
        "split": split,
        "classes": len(data.classes),
        "shape": list(data.shape),
        "rows": rows,
    }


@router.get("/augmentations")
def augmentations() -> dict:
    """What an augmentation spec may name (cnnlab.data.augment): each operation with its value's name, rule, default
    and meaning, and the presets."""
    return {
        "operations": [
            {"name": name, "arg": kind.arg, "rule": kind.rule, "default": kind.default, "meaning": kind.meaning}
            for name, kind in OPS.items()
        ],
        "presets": PRESETS,
    }


class AugmentRequest(BaseModel):
    dataset: str = Field(description="an id from GET /api/datasets")
    spec: str = Field("", max_length=300, description="e.g. flip,rotate=10,crop=4 (as --augment); empty: none")
    count: int = Field(4, description="training images (rows), 1 to 16", json_schema_extra=bounds(1, 16))
    copies: int = Field(5, description="augmented copies of each (columns), 1 to 10", json_schema_extra=bounds(1, 10))
    seed: int = Field(
        0, description="the random draws: the same seed gives the same picture", json_schema_extra=bounds(0, 2**31 - 1)
    )


@router.post("/augment")
def augment(request: AugmentRequest, store: RunStore = Depends(get_store)) -> dict:
    """The first `count` training images, each beside `copies` augmented versions (cnnlab augment-preview's grid),
    as one PNG. A spec the library refuses is a 400 with its one-line message."""
    within(request.count, "count", 1, 16, "from 1 to 16")
    within(request.copies, "copies", 1, 10, "from 1 to 10")
    within(request.seed, "seed", 0, 2**31 - 1, "a whole number from 0 to 2^31 - 1")
    augmentation = parse_augment(request.spec)  # a bad spec fails before the data set is read
    data = dataset(store, request.dataset)
    grid = preview(data.train.pixels(slice(0, request.count)), augmentation.spec, request.seed, request.copies)
    return {
        "spec": augmentation.spec,
        "describe": augmentation.describe(),
        "image": png_data_url(grid),
        "rows": request.count,
        "columns": 1 + request.copies,
        "tile": list(data.shape[1:]),
    }
