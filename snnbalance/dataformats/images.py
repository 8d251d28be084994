"""Image folders: one subfolder per class, class index = position of the subfolder's name in
sorted order (as torchvision's ``ImageFolder``), images read with Pillow.

Splits: a folder with ``train/`` and ``test/`` subfolders (``val/`` stands in for ``test/``) has
both; otherwise its images serve as both splits (the caller gets a note saying so). Labels
follow the training folder's classes in both splits.

Size and colour, the stated rule: a target shape ``(C, H, W)`` (the model's input shape, or
``--input-shape``) fixes both; without one, the images are grayscale (``C = 1``) when every image
is grayscale and RGB (``C = 3``) otherwise, and ``H x W`` is the first image's size (first class,
first file by name). Each image is scaled, keeping its aspect ratio, until it covers ``H x W``
(bilinear), then cropped to ``H x W`` around its centre.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
_GRAY = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def split_folders(root: Path) -> tuple[Path, Path, str | None]:
    """``(train folder, test folder, note)``; the note says when one folder serves both splits."""
    train = root / "train"
    test = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    if train.is_dir() and test is not None:
        return train, test, None
    return (
        root,
        root,
        (
            f"image folder {root} has no train/ and test/ subfolders: its images are both the "
            "test images and the calibration (training) images"
        ),
    )


def classes_of(folder: Path) -> list[str]:
    """Sorted class subfolder names (hidden folders skipped)."""
    if not folder.is_dir():
        raise DataError(f"image folder {folder} not found")
    names = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not names:
        raise DataError(
            f"image folder {folder} has no class subfolders: put each class's images in a "
            f"subfolder named after the class (e.g. {folder / 'cat' / '0001.png'})"
        )
    return names


def listing(folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """``(image file, label)`` in class order, then file-name order."""
    extra = sorted(set(classes_of(folder)) - set(classes))
    if extra:
        raise DataError(f"image folder {folder} has classes the training folder lacks: {', '.join(extra[:5])}")
    files = [
        (f, i)
        for i, c in enumerate(classes)
        if (folder / c).is_dir()
        for f in sorted((folder / c).iterdir())
        if f.is_file() and f.suffix.lower() in EXTENSIONS
    ]
    if not files:
        raise DataError(
            f"image folder {folder} holds no images ({', '.join(EXTENSIONS[:4])}, ...) in its class "
            f"subfolders {', '.join(classes[:3])}{', ...' if len(classes) > 3 else ''}"
        )
    return files


def _pil():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with torchvision
        raise DataError("reading image folders needs Pillow: pip install pillow") from None
    return Image


def target(files: list[tuple[Path, int]], shape: tuple[int, ...] | None) -> tuple[str, tuple[int, int]]:
    """Pillow mode (``L`` or ``RGB``) and ``(H, W)`` by the rule in the module docstring."""
    if shape is not None and len(shape) == 3:
        if shape[0] not in (1, 3):
            raise DataError(f"image folders give 1 (grayscale) or 3 (RGB) channels; the model takes {shape[0]}")
        return ("L" if shape[0] == 1 else "RGB"), (int(shape[1]), int(shape[2]))
    image = _pil()
    gray, size = True, None
    for path, _ in files:  # never empty: `listing` refuses an empty folder  # Image.open reads the header only: cheap even for many files
        with _open(image, path) as im:
            gray = gray and im.mode in _GRAY
            size = size or (im.height, im.width)
        if not gray:
            break
    assert size is not None  # the loop read at least one image's header
    return ("L" if gray else "RGB"), size


def sample_shape(root: Path) -> tuple[int, int, int]:
    """The per-sample shape the test split is read with when no target shape is given."""
    train, test, _ = split_folders(root)
    mode, (h, w) = target(listing(test, classes_of(train)), None)
    return (1 if mode == "L" else 3), h, w


def load(root: Path, split: str, shape: tuple[int, ...] | None = None, notes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``(N, C, H, W)`` and int64 labels of ``split`` (``train``/``test``) of the folder."""
    train, test, note = split_folders(root)
    files = listing(train if split == "train" else test, classes_of(train))
    mode, (h, w) = target(files, shape)
    image = _pil()
    out = np.empty((len(files), 1 if mode == "L" else 3, h, w), np.uint8)
    resized = 0
    for i, (path, _) in enumerate(files):
        with _open(image, path) as im:
            try:
                im = im.convert(mode)
            except (OSError, ValueError) as exc:  # truncated or damaged pixel data
                raise DataError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None
            if (im.height, im.width) != (h, w):
                resized += 1
                scale = max(h / im.height, w / im.width)
                nh, nw = max(h, round(im.height * scale)), max(w, round(im.width * scale))
                im = im.resize((nw, nh), image.Resampling.BILINEAR)
                top, left = (nh - h) // 2, (nw - w) // 2
                im = im.crop((left, top, left + w, top + h))
            pixels = np.asarray(im, dtype=np.uint8)
        out[i] = pixels[None] if mode == "L" else pixels.transpose(2, 0, 1)
    if notes is not None:
        if note and note not in notes:
            notes.append(note)
        if resized:
            notes.append(
                f"{resized} of {len(files)} {split} images in {root} scaled to cover {h}x{w} and "
                f"center-cropped" + ("" if shape else " (the first image's size; --input-shape C,H,W chooses another)")
            )
    return out, np.array([label for _, label in files], np.int64)


def _open(image, path: Path):
    try:
        return image.open(path)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for a damaged file
        raise DataError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None
