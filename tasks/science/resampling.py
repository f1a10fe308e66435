"""How to make a raster smaller: which resampling suits a band, and the sizes to resample to (NumPy only)."""

import numpy as np

FLAG_NAMES = ("QA", "BQA", "FLAG", "MASK", "CLOUD")


def is_flag_band(name: str, dtype: str, description: str | None) -> bool:
    """True for an integer band of bit flags or classes (by its name or description), where averaging is wrong."""
    words = f"{name} {description or ''}".upper().replace("-", "_")
    return np.dtype(dtype).kind in "ui" and any(f"_{w}" in f"_{words}" for w in FLAG_NAMES)


def auto_method(flags: list[bool]) -> str:
    """Nearest when every band holds flags (averaging flags invents values), average for measurements."""
    return "nearest" if all(flags) else "average"


def scaled_size(width: int, height: int, target_width: int) -> tuple[int, int]:
    """(width, height) of `target_width` pixels wide, aspect kept (as `gdalwarp -ts W 0`)."""
    return target_width, max(1, round(height * target_width / width))


def fit_size(width: int, height: int, box: int) -> tuple[int, int]:
    """(width, height) fitting in box x box, aspect kept (as `convert -resize BOXxBOX`)."""
    scale = min(box / width, box / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))
