"""A small PNG of one instance, windowed, so a person can see what a series holds."""

from __future__ import annotations

import io

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_voi_lut

MAX_SIDE = 128


def thumbnail_png(data: bytes, max_side: int = MAX_SIDE) -> bytes:
    """PNG bytes of the middle frame: modality LUT, then the header's VOI window (else the
    1st-99th percentile), scaled to 8 bits and at most ``max_side`` pixels on a side."""
    ds = pydicom.dcmread(io.BytesIO(data))
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames > 1:
        arr = arr[frames // 2]
    if int(ds.get("SamplesPerPixel") or 1) == 1:
        arr = apply_modality_lut(arr, ds)
        if "WindowCenter" in ds or "VOILUTSequence" in ds:
            arr = apply_voi_lut(arr, ds)
        arr = arr.astype(np.float64)
        lo, hi = np.percentile(arr, 1), np.percentile(arr, 99)
        if hi <= lo:
            lo, hi = float(arr.min()), float(arr.max()) or 1.0
        img = np.clip((arr - lo) / ((hi - lo) or 1.0) * 255.0, 0, 255).astype(np.uint8)
        if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
            img = 255 - img
        image = Image.fromarray(img, mode="L")
    else:
        if str(ds.get("PhotometricInterpretation", "")).startswith("YBR"):
            from pydicom.pixels import convert_color_space

            arr = convert_color_space(arr, str(ds.PhotometricInterpretation), "RGB")
        image = Image.fromarray(np.asarray(arr, dtype=np.uint8), mode="RGB")
    image.thumbnail((max_side, max_side))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
