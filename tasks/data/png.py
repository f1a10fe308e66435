"""PNG files of the pictures the science makes (quicklooks, browse images)."""

import io

import numpy as np


def png_bytes(image: np.ndarray) -> bytes:
    """PNG encoding of an RGB(A) or grey(+alpha) uint8 image, (height, width[, channels])."""
    from PIL import Image  # when a picture is made, not when a step starts

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)
    return buf.getvalue()
