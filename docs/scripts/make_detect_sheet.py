"""Make docs/images/detect_sheet.png: `render --sheet` of `detect` output on real photographs.

Runs exactly the README's pipeline on ../shared/realdata (the photographs are not in the
repository) and shrinks the sheet to 1100 pixels wide:

    handtools import images photos/ | handtools detect | handtools render --sheet

Run: python docs/scripts/make_detect_sheet.py [PHOTOS]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT.parent / "shared" / "realdata"
WIDTH = 1100


def main() -> None:
    import cv2

    photos = Path(sys.argv[1]) if len(sys.argv) > 1 else PHOTOS
    ht = f"{sys.executable} -m handtools -q"
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        subprocess.run(
            f"set -o pipefail; {ht} import images {photos} --out {t / 'frames'} | {ht} detect --out {t / 'det'}"
            f" | {ht} render --sheet --no-png --out {t / 'vis'}",
            shell=True, check=True, executable="/bin/bash", cwd=ROOT, stdout=subprocess.DEVNULL,
        )
        sheet = cv2.imread(str(t / "vis" / "sheet.png"))
    h, w = sheet.shape[:2]
    small = cv2.resize(sheet, (WIDTH, round(h * WIDTH / w)), interpolation=cv2.INTER_AREA)
    target = ROOT / "docs" / "images" / "detect_sheet.png"
    cv2.imwrite(str(target), small)
    print(target)


if __name__ == "__main__":
    main()
