"""What excites a channel: the data set patches where it fires hardest (Zeiler & Fergus 2014, figure 2).

Each image scores its strongest response anywhere in the channel's feature map; the best images give a patch
each, cropped to the receptive field of the unit that fired. Early layers pick edges and colours, deeper ones
textures, parts and objects: the patches grow and get more specific with depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cnnlab.errors import CnnlabError
from cnnlab.inspect.receptive import gradient_box, receptive_field
from cnnlab.models.capture import Capture
from cnnlab.models.layers import resolve_layer
from cnnlab.predict import as_predictor


@dataclass
class TopPatches:
    layer: str
    channels: list[int]
    index: np.ndarray  # [K, P] data set index of each patch's image, best first
    value: np.ndarray  # [K, P] the channel's strongest response in that image
    position: np.ndarray  # [K, P, 2] (row, column) of that response in the feature map
    box: np.ndarray  # [K, P, 4] top, left, bottom, right (exclusive) of the patch in the image
    patches: list[list[np.ndarray]]  # uint8 [C, h, w] crops: patches[k][p]
    scores: np.ndarray  # [N, K] each image's strongest response, for every image searched
    receptive_field: str  # how the boxes were found, in words


def top_patches(
    model_or_run, images, layer: str | None = None, channels: int = 8, per_channel: int = 9, batch_size: int = 256
) -> TopPatches:
    """For the first `channels` channels of `layer`, the `per_channel` images (uint8 [N, C, H, W]) that excite each
    most, with the patch around the strongest unit."""
    return _top_patches_of(as_predictor(model_or_run), images, [layer], channels, per_channel, batch_size)[0]


def _top_patches_of(predictor, images, layers: list, channels: int, per_channel: int, batch_size: int = 256):
    """`top_patches` of each of `layers`, all from one forward pass per batch (a deep layer's pass also gives the
    shallow ones)."""
    images = torch.as_tensor(np.asarray(images))
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise CnnlabError("top patches are cropped from pixels: give uint8 images [N, C, H, W]")
    named = [resolve_layer(predictor.model, layer) for layer in layers]
    found = [([], []) for _ in named]  # per layer: each batch's strongest responses and where they are
    with torch.no_grad():
        for batch in images.split(batch_size):
            outputs = layer_outputs(predictor.model, predictor.inputs(batch), [module for _, module in named])
            for (name, _), maps, (scores, where) in zip(named, outputs, found):
                if maps.ndim != 4:
                    raise CnnlabError(
                        f"top patches need a layer with feature maps [C, H, W]; {name} outputs "
                        f"{list(maps.shape[1:])} values per image"
                    )
                width = maps.shape[3]
                best, at = maps[:, :channels].flatten(2).float().max(2)
                scores.append(best)
                where.append(torch.stack([at // width, at % width], 2))
    return [
        _patches_at(predictor, images, name, module, torch.cat(scores), torch.cat(where), per_channel)
        for (name, module), (scores, where) in zip(named, found)
    ]


def layer_outputs(model, x: torch.Tensor, layers: list) -> list[torch.Tensor]:
    """The output (first use) of each of `layers` for input x, from one forward pass stopped once all have run."""
    with Capture(model, layers, stop_after=layers) as seen:
        model(x)
    missing = [layer for layer in layers if not seen.of(layer)]
    if missing:
        raise CnnlabError("a layer is not used by the model's forward pass; choose another (`cnnlab layers RUN`)")
    return [seen.first(layer).output for layer in layers]


def _patches_at(predictor, images, name, module, scores, where, per_channel: int) -> TopPatches:
    """The best images of each channel from their strongest responses `scores` [N, K] at `where` [N, K, 2], with
    the patch each was cut from."""
    k, count = scores.shape[1], min(per_channel, len(images))
    value, index = scores.topk(count, dim=0)  # [P, K]: best images first
    value, index = value.T, index.T
    position = where[index, torch.arange(k).view(-1, 1)]  # [K, P, 2]

    c, h, w = images.shape[1:]
    field = receptive_field(predictor.model, module, (c, h, w))
    if field is not None:
        boxes = [[field.box(r, q, (h, w)) for r, q in rows.tolist()] for rows in position]
        how = (
            f"receptive field {field.size[0]}x{field.size[1]} pixels, {field.jump[0]} apart "
            "(from the kernels, strides and paddings)"
        )
    else:
        boxes = [
            [gradient_box(predictor.model, module, (c, h, w), ch, r, q) for r, q in rows.tolist()]
            for ch, rows in enumerate(position)
        ]
        how = "receptive field from the gradient of each unit (an op resizes the maps in a way not followed)"
    patches = [
        [images[i, :, top:bottom, left:right].numpy() for i, (top, left, bottom, right) in zip(ids.tolist(), row)]
        for ids, row in zip(index, boxes)
    ]
    return TopPatches(
        name,
        list(range(k)),
        index.numpy(),
        value.numpy(),
        position.numpy(),
        np.array(boxes),
        patches,
        scores.numpy(),
        how,
    )


def images_to_search(predictor, dataset: str | None = None, data_root=None, limit: int = 2000):
    """(uint8 images [N, C, H, W], what they are in words, their names or None) that top patches search: a run's
    data set (its test split), or for a network with no run (published weights) the photos under `data_root`,
    each cut as the model takes its input."""
    from cnnlab.data import load_dataset

    if predictor.record is None:
        if data_root is None:
            raise CnnlabError(
                f"{predictor.name} has no data set of its own: give a folder of photos to search with --data-root"
            )
        if dataset not in (None, "imagefolder"):
            raise CnnlabError(f"--dataset {dataset}: a network with no run searches a folder of photos (--data-root)")
        files = photo_files(data_root)[:limit]
        return predictor.prepare(files)[0], f"{len(files)} images of {data_root}", [str(f) for f in files]
    config = predictor.record.config
    name = dataset or config.dataset
    data = load_dataset(name, data_root=data_root or config.data_root, image_size=config.image_size)
    if tuple(data.shape) != tuple(predictor.input_shape):
        raise CnnlabError(
            f"{name} images are {'x'.join(map(str, data.shape))} but the model takes "
            f"{'x'.join(map(str, predictor.input_shape))}; use the data set it was trained on"
        )
    images = data.test.pixels(slice(0, limit))
    return images, f"the first {len(images)} {name} test images", None


def photo_files(folder) -> list:
    """The image files under `folder`, in its sub-folders too, sorted."""
    from pathlib import Path

    from cnnlab.data.formats import IMAGE_EXTENSIONS

    root = Path(folder)
    if not root.is_dir():
        raise CnnlabError(f"{root}: no such folder; give a folder of photos (sub-folders are searched too)")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise CnnlabError(f"{root}: no images found ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return files


def depth_layers(model, input_shape) -> list[str]:
    """The layers Zeiler & Fergus's figure goes through: the last conv layer at each feature-map size, shallow to
    deep (ResNet-18: conv1, layer1.1.conv2, ..., layer4.1.conv2), where edges become textures become parts."""
    from torch import nn

    from cnnlab.models.layers import layer_table

    convs = {name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)}
    last_at: dict[tuple, str] = {}
    for row in layer_table(model, input_shape):
        if row.name in convs and len(row.output_shape) == 3:
            last_at[tuple(row.output_shape[1:])] = row.name  # dicts keep the order sizes first appear in
    if not last_at:
        raise CnnlabError("the model has no conv layer: top patches need feature maps")
    return list(last_at.values())


def top_patches_by_depth(
    model_or_run, images, layers: list[str] | None = None, channels: int = 4, per_channel: int = 9
) -> list[TopPatches]:
    """`top_patches` of several layers (default: `depth_layers`), the first `channels` channels of each."""
    predictor = as_predictor(model_or_run)
    images = torch.as_tensor(np.asarray(images))
    layers = layers or depth_layers(predictor.model, tuple(images.shape[1:]))
    return _top_patches_of(predictor, images, layers, channels, per_channel)
