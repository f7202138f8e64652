"""Make docs/images/synth_sheet.png: a contact sheet of `handtools synth` samples.

Row 1-2: studio domain (mono); rows 3-4: indoor domain, left and right views of
stereo pairs. Run: python docs/scripts/make_synth_sheet.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    import imageio.v3 as iio

    from handtools.core.render.visualize import contact_sheet, put_label
    from handtools.io.shards import ShardReader

    tiles = []
    with tempfile.TemporaryDirectory() as tmp:
        for domain, views, seed in (("studio", 1, 10), ("indoor", 2, 11)):
            out = Path(tmp) / domain
            subprocess.run(
                [sys.executable, "-m", "handtools", "-q", "synth", "--domain", domain, "--views", str(views),
                 "-n", "8", "--seed", str(seed), "--out", str(out)],
                check=True, stdout=subprocess.DEVNULL,
            )
            r = ShardReader(sorted(out.glob("*.h5"))[0])
            images = r.read("images")
            for i in range(8 if views == 1 else 4):
                for v in range(views):
                    label = f"{domain}" + ("" if views == 1 else (" left" if v == 0 else " right"))
                    tiles.append(put_label(images[i, v], label))
    sheet = contact_sheet(tiles, cols=4, max_width=1600)
    path = ROOT / "docs" / "images" / "synth_sheet.png"
    iio.imwrite(path, np.asarray(sheet))
    print(path)


if __name__ == "__main__":
    main()
