"""Reading and writing image files: the one place where cnnlab turns files into pictures and back.

The colour convention, for all of cnnlab: an image array is uint8, RGB [H, W, 3] or grey [H, W], as PIL and
matplotlib use them (the models' batches put the channels first, [N, C, H, W], in the same RGB order).
OpenCV decodes and encodes in BGR order; that order exists only inside this module.

PIL and OpenCV are imported inside the functions: reading a photo for a model should not pay for OpenCV,
nor filtering a picture for PIL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.files import write_bytes

# A 50-MP phone photo passes; PIL's own bomb limit (~89 Mpx) only warns, and resizing ignores it.
MAX_PIXELS = 64_000_000
MAX_ASPECT = 50  # longer side over shorter side: wider than any panorama, so a 1 x 1,000,000 PNG is refused


def check_size(image, path) -> None:
    """Refuse, before decoding, an image too big or too thin to be a photo: its size is known from the header."""
    w, h = image.size
    if w * h > MAX_PIXELS:
        raise CnnlabError(
            f"{path}: {w}x{h} is {w * h / 1e6:.0f} Mpx, over cnnlab's limit of "
            f"{MAX_PIXELS / 1e6:.0f} Mpx per image; shrink it first"
        )
    if min(w, h) == 0 or max(w, h) > MAX_ASPECT * min(w, h):
        raise CnnlabError(
            f"{path}: {w}x{h} is not a picture cnnlab takes (sides more than {MAX_ASPECT}:1 apart); crop it first"
        )


def open_image(source: str | Path | bytes, name: str = "upload"):
    """Open one image (a PIL image) for prediction, from a file or from the bytes of one (an upload, called `name`
    in errors); a text file, a broken image or one over the size limits (MAX_PIXELS, MAX_ASPECT, checked before
    decoding) becomes a one-line error."""
    import io

    from PIL import Image, UnidentifiedImageError

    if isinstance(source, bytes):
        path, file = name, io.BytesIO(source)
    else:
        path = file = Path(source)
        if not path.is_file():
            raise CnnlabError(f"{path}: no such file")
    try:
        with Image.open(file) as im:
            check_size(im, path)
            im.load()
            return upright(im).copy()
    except Image.DecompressionBombError as e:  # PIL's own refusal, past twice its limit, comes first
        raise CnnlabError(f"{path}: {e} (cnnlab's limit is {MAX_PIXELS / 1e6:.0f} Mpx per image)") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise CnnlabError(
            f"{path}: not an image that can be read ({e.__class__.__name__}); "
            "give a PNG, JPEG, BMP, GIF, TIFF or WebP file"
        ) from None


def image_header(path: str | Path):
    """(size, mode) from an image file's header, without decoding it; a file over the size limits is refused."""
    from PIL import Image

    with Image.open(path) as im:
        check_size(im, path)
        return im.size, im.mode


def decode_square(path: str | Path, channels: int, size: int) -> np.ndarray:
    """One image file as uint8 [channels, size, size] (RGB or L, shorter side to `size`, centre square). JPEGs
    are decoded at the smallest scale (1/2, 1/4, 1/8) still at least `size`: an eighth of the work for a photo."""
    from PIL import Image

    with Image.open(path) as im:
        check_size(im, path)  # again: the file may have changed since its header was read
        im.draft("RGB" if channels == 3 else "L", (size, size))
        pixels = np.asarray(resize_center_crop(to_mode(im, channels, path), size))
        return pixels.reshape(size, size, channels).transpose(2, 0, 1)


def attempt(function, path, *args):
    """(function(path, *args), None), or (None, why) when the file cannot be read: for readers of many files,
    where one bad file must not stop the rest (and a worker process must not raise)."""
    from PIL import Image

    try:
        return function(path, *args), None
    except (CnnlabError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        return None, f"{path}: {e or e.__class__.__name__}"  # PIL's parsers raise SyntaxError for some files


ORIENTATION = 0x0112  # the EXIF tag a phone sets instead of turning the pixels


def upright(image):
    """The image as every viewer shows it: a phone photo's pixels are often stored sideways, with an EXIF
    orientation (2 to 8) saying how to turn them. Every reader in cnnlab passes images through here."""
    from PIL import ImageOps

    try:
        turned = image.getexif().get(ORIENTATION, 1) not in (1, None)
    except (OSError, ValueError, SyntaxError):  # a damaged EXIF block: the pixels are still good
        return image
    return ImageOps.exif_transpose(image) if turned else image


# Modes PIL cannot convert to RGB or L itself, or converts wrongly, and how cnnlab reads them.
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # 0..65535: scaled to 0..255, not clipped at 255
TRANSPARENT = ("RGBA", "LA", "PA", "RGBa", "La")  # composited on white (RGBa and La: premultiplied)


def to_mode(image, channels: int, name="image"):
    """Any PIL image (palette, alpha, CMYK, 16-bit, CIELAB, ...) as RGB or L; transparency is composited on white.
    EXIF orientation is applied first. A mode with no meaning as a picture is a one-line error naming `name`."""
    from PIL import Image

    image = upright(image)
    if image.mode in TRANSPARENT or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("LA").convert("RGBA") if image.mode == "La" else image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    elif image.mode in SIXTEEN_BIT:
        image = Image.fromarray((np.asarray(image, dtype=np.float64) / 257).round().clip(0, 255).astype(np.uint8))
    elif image.mode == "LAB":  # PIL would copy L, a, b into R, G, B: a colour transform is needed
        from PIL import ImageCms

        lab_to_rgb = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
        )
        image = ImageCms.applyTransform(image, lab_to_rgb)
    try:
        return image.convert("RGB" if channels == 3 else "L")
    except ValueError:
        raise CnnlabError(
            f"{name}: PIL mode {image.mode} cannot be read as a picture; save it as an RGB or "
            "greyscale PNG or JPEG first"
        ) from None


def resize_center_crop(image, size: int):
    """Shorter side to `size`, then the central size×size square: the usual evaluation view of a photo.
    Only that square is resampled, so the work and memory are size×size whatever the image's shape."""
    from PIL import Image

    w, h = image.size
    if (w, h) == (size, size):
        return image
    if size * size > MAX_PIXELS:
        raise CnnlabError(
            f"image size {size} gives {size * size / 1e6:.0f} Mpx, over cnnlab's limit of "
            f"{MAX_PIXELS / 1e6:.0f} Mpx per image; choose a smaller size"
        )
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    return image.resize((size, size), Image.BILINEAR, box=(left, top, left + side, top + side))


def digit_like_mnist(drawing, box: int = 20, size: int = 28) -> np.ndarray:
    """A drawn digit made the way MNIST's were: cropped to the ink, scaled to fit a box x box square (aspect kept),
    pasted into size x size so that its centre of mass is the centre. Takes a PIL image or a uint8 array (grey
    [H, W], or [H, W, 3|4]), light strokes on dark or dark on light; returns uint8 [size, size], white on black.
    No ink at all gives a black image."""
    from PIL import Image

    image = drawing if hasattr(drawing, "mode") else Image.fromarray(np.asarray(drawing, dtype=np.uint8))
    grey = np.asarray(to_mode(image, 1), dtype=np.uint8)
    if np.median(grey) > 127:  # the background is most of a drawing: light means dark strokes
        grey = 255 - grey
    rows, cols = np.nonzero(grey > 25)  # ink: a tenth of full strength, so antialiased edges stay faint
    out = np.zeros((size, size), np.uint8)
    if rows.size == 0:
        return out
    ink = grey[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = box / max(ink.shape)
    h, w = max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale))
    scaled = np.asarray(Image.fromarray(ink).resize((w, h), Image.BILINEAR), dtype=np.uint8)
    mass = scaled.astype(np.float64)
    total = mass.sum() or 1.0
    centre_y = (mass.sum(1) * np.arange(h)).sum() / total
    centre_x = (mass.sum(0) * np.arange(w)).sum() / total
    middle = (size - 1) / 2  # the centre of the middle pixels, in pixel-index coordinates
    top = int(np.clip(round(middle - centre_y), 0, size - h))  # clipped: the digit is never cut off
    left = int(np.clip(round(middle - centre_x), 0, size - w))
    out[top : top + h, left : left + w] = scaled
    return out


def read_array(path: str | Path, color: bool = False) -> np.ndarray:
    """An image file decoded by OpenCV: uint8 grey (H, W), or RGB (H, W, 3) when `color`."""
    import cv2

    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as error:
        reason = "no such file" if not file.exists() else error.strerror or str(error)
        raise CnnlabError(f"cannot read image {path}: {reason} (or use a sample such as sample:city)") from None
    # imdecode rather than imread: it stays silent on bad files (imread logs warnings) and takes any path.
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise CnnlabError(f"cannot read image {path}: not an image format OpenCV can decode (try PNG or JPEG)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if color else image


def write_png(path: str | Path, image: np.ndarray) -> None:
    """A uint8 grey (H, W) or RGB (H, W, 3) array as a PNG file, written atomically. RGBA (H, W, 4), such as a
    drawn figure's buffer, is written opaque: its alpha is dropped in the same pass that reorders the colours."""
    write_bytes(path, png_bytes(image))


def png_bytes(image: np.ndarray, fast: bool = False) -> bytes:
    """A uint8 grey, RGB or RGBA (written opaque) array as the bytes of a PNG file. `fast`: Huffman coding only,
    ~2.5x faster to make and often smaller, for pictures shown once (the web explorer's)."""
    import cv2

    image = np.asarray(image)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGR if image.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    options = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image), options if fast else [])
    if not ok:
        raise CnnlabError(f"could not encode a {image.dtype} {list(image.shape)} array as PNG")
    return data.tobytes()
