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

from _figures import ROOT, save_shrunk

PHOTOS = ROOT.parent / "shared" / "realdata"


def main() -> None:
    photos = Path(sys.argv[1]) if len(sys.argv) > 1 else PHOTOS
    ht = f"{sys.executable} -m handtools -q"
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        subprocess.run(
            f"set -o pipefail; {ht} import images {photos} --out {t / 'frames'} | {ht} detect --out {t / 'det'}"
            f" | {ht} render --sheet --no-png --out {t / 'vis'}",
            shell=True, check=True, executable="/bin/bash", cwd=ROOT, stdout=subprocess.DEVNULL,
        )
        print(save_shrunk(t / "vis" / "sheet.png", "detect_sheet.png"))


if __name__ == "__main__":
    main()
