"""Real photographs that ship inside the scikit-image and scikit-learn wheels (no download)."""

from __future__ import annotations

import numpy as np

#: ``"skimage:<loader>"`` calls ``skimage.data.<loader>()``; ``"sklearn:<file>"`` reads ``load_sample_image(<file>)``.
PHOTO_SOURCES = ("skimage", "sklearn")


def load_photo(name: str) -> np.ndarray:
    """RGB uint8 photo (H, W, 3) named ``"skimage:grass"`` or ``"sklearn:china.jpg"``."""
    source, _, item = str(name).partition(":")
    if source == "skimage":
        import skimage.data

        loader = getattr(skimage.data, item, None)
        if loader is None:
            raise ValueError(f"photo {name!r}: skimage.data has no loader {item!r}.")
        photo = loader()
    elif source == "sklearn":
        from sklearn.datasets import load_sample_image

        photo = load_sample_image(item)
    else:
        raise ValueError(f"photo {name!r} must start with one of {[s + ':' for s in PHOTO_SOURCES]}.")
    photo = np.asarray(photo)
    if photo.ndim == 2:
        photo = np.repeat(photo[:, :, None], 3, axis=2)
    if photo.ndim != 3 or photo.shape[2] < 3:
        raise ValueError(f"photo {name!r} has shape {photo.shape}; expected (H, W) or (H, W, 3).")
    return np.ascontiguousarray(photo[:, :, :3]).astype(np.uint8)


def resize_shorter_side(photo: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W, 3) uint8 so that its shorter side is ``size`` pixels (bilinear)."""
    from PIL import Image

    height, width = photo.shape[:2]
    scale = size / min(height, width)
    shape = (max(size, round(width * scale)), max(size, round(height * scale)))
    return np.asarray(Image.fromarray(photo).resize(shape, Image.BILINEAR))
