"""The installed environment: exactly one OpenCV distribution provides ``cv2``.

Two OpenCV wheels write the same ``cv2`` folder, so whichever was installed last wins,
file by file (issue 12: opencv-contrib-python 5.1, pulled in by mediapipe, overwrote
opencv-python-headless 5.0). pyproject.toml says why the headless build is the one.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
from pathlib import Path

EXPECTED = "opencv-python-headless"
# Every distribution the OpenCV project publishes with a `cv2` package.
OPENCV_DISTRIBUTIONS = (
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def test_exactly_one_opencv_distribution_is_installed():
    found = [name for name in OPENCV_DISTRIBUTIONS if _installed(name)]
    assert len(found) == 1, f"{len(found)} OpenCV distributions installed: {found or 'none'}"
    assert found == [EXPECTED], f"OpenCV comes from {found[0]}, expected {EXPECTED}"


def test_cv2_has_one_provider_and_is_its_build():
    # Any distribution that ships a top-level `cv2`, OpenCV's own or not.
    providers = sorted({_normalise(d) for d in metadata.packages_distributions().get("cv2", [])})
    assert providers == [EXPECTED], f"`cv2` is provided by {providers or 'nothing'}"

    import cv2

    dist = metadata.distribution(EXPECTED)
    owned = {Path(dist.locate_file(f)).resolve() for f in dist.files or ()}
    assert Path(cv2.__file__).resolve() in owned, f"cv2 imports from {cv2.__file__}, not from {EXPECTED}"
    # The wheel's version is OpenCV's plus a build number: 5.0.0.93 is OpenCV 5.0.0.
    assert dist.version.startswith(cv2.__version__ + "."), (cv2.__version__, dist.version)
