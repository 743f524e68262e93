#!/usr/bin/env python3
"""Makes tests/fixtures/cmyk.jpg and tests/fixtures/cmyk.json: a small CMYK JPEG (as Photoshop and
print workflows write them, with Adobe's inverted polarity, which Pillow writes too) and the sha256
of what PIL decodes from it with `Image.open(p).convert('RGB')`, for the decoding parity test.

Run by hand (needs pillow): python3 tools/make_cmyk_fixture.py
"""
import hashlib
import json
from pathlib import Path

from PIL import Image

root = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
width, height = 96, 64
cmyk = Image.new("CMYK", (width, height))
cmyk.putdata([
    ((x * 255) // width, (y * 255) // height, ((x + y) * 127) // (width + height), (x * y) % 200)
    for y in range(height) for x in range(width)
])
path = root / "cmyk.jpg"
cmyk.save(path, quality=90)
rgb = Image.open(path).convert("RGB")
assert Image.open(path).mode == "CMYK"
record = {
    "file": "cmyk.jpg",
    "size": [rgb.width, rgb.height],
    "decoded_sha256": hashlib.sha256(rgb.tobytes()).hexdigest(),
    "pillow": Image.__version__,
}
(root / "cmyk.json").write_text(json.dumps(record, indent=1) + "\n")
print(record)
