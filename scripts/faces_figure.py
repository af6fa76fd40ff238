"""docs/faces.png: the photographs of tests/data/test_faces.py with the crop's footprint (green) and the face
box checked by eye (red), and the 112x112 crops as the model sees them (shown in RGB).

    python scripts/faces_figure.py [--out docs/faces.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

TILE = 160  # every panel is TILE x TILE


def panel(img: np.ndarray, cropper, box) -> tuple[Image.Image, Image.Image]:
    pts = cropper.landmarks(img)
    a, t = cropper.transform(pts)
    s = cropper.size
    corners = (np.array([[0, 0], [s, 0], [s, s], [0, s]]) - 0.5 - t) @ np.linalg.inv(a).T
    lo, hi = corners.min(0), corners.max(0)
    margin = 0.35 * (hi - lo).max()
    view = (*(lo - margin), *(hi + margin))
    scale = TILE / (view[2] - view[0])
    pic = Image.fromarray(img).transform((TILE, TILE), Image.EXTENT, view, Image.BILINEAR)
    draw = ImageDraw.Draw(pic)
    to_view = lambda p: tuple((np.asarray(p) - view[:2]) * scale)  # noqa: E731
    draw.polygon([to_view(c) for c in corners], outline=(0, 220, 0), width=2)
    if box is not None:
        draw.rectangle([to_view(box[:2]), to_view(box[2:])], outline=(230, 0, 0), width=2)
    crop = Image.fromarray(cropper.align(img, pts)).resize((TILE, TILE), Image.NEAREST)
    return pic, crop


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "faces.png"))
    args = ap.parse_args()
    import skimage.data
    from test_faces import PHOTOS, photo

    from affectgpt.data.faces import FaceCropper

    cropper = FaceCropper()
    astro = skimage.data.astronaut()
    turned = np.asarray(Image.fromarray(astro).rotate(20, resample=Image.BILINEAR, center=(228, 130)))
    panels = [panel(photo(n), cropper, PHOTOS[n]) for n in PHOTOS] + [panel(turned, cropper, None)]
    sheet = Image.new("RGB", (TILE * 2 * len(panels), TILE), "white")
    for i, (pic, crop) in enumerate(panels):
        sheet.paste(pic, (2 * i * TILE, 0))
        sheet.paste(crop, ((2 * i + 1) * TILE, 0))
    sheet.quantize(256, dither=Image.Dither.NONE).save(args.out, optimize=True)  # a palette: ~4x smaller
    print(f"{args.out}: {sheet.width}x{sheet.height}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
