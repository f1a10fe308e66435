"""The science of __NAME__, NumPy alone: what the compute step does to each window (tested without any I/O)."""

import numpy as np


def normalised_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a - b) / (a + b) as float32; NaN where either input is NaN or both are 0."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    total = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (a - b) / total
    return np.where(total == 0, np.float32(np.nan), out).astype(np.float32)
