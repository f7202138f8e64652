"""What the docs' figure scripts share."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def save_shrunk(src: Path, name: str, width: int = 1100) -> Path:
    """Write the image ``src`` as ``docs/images/<name>``, shrunk (area) to ``width`` pixels wide."""
    import cv2

    img = cv2.imread(str(src))
    if img is None:
        raise SystemExit(f"{src}: no image was written")
    h, w = img.shape[:2]
    small = cv2.resize(img, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
    target = ROOT / "docs" / "images" / name
    cv2.imwrite(str(target), small)
    return target
