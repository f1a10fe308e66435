"""PNG files of the pictures the science makes (quicklooks, browse images)."""

import io

import numpy as np
from PIL import Image


def png_bytes(image: np.ndarray) -> bytes:
    """PNG encoding of an RGB(A) or grey(+alpha) uint8 image, (height, width[, channels])."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)
    return buf.getvalue()
