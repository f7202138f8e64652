"""The FreiHAND pred.json submission layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from handtools.core.eval.freihand import freihand_submission
from tests.core.eval.conftest import hand_like


def test_freihand_submission_layout(rng):
    pj = hand_like(rng, 3, 21).astype(np.float32)
    pv = hand_like(rng, 3, 778).astype(np.float32)
    sub = freihand_submission(pj, pv)
    assert isinstance(sub, list) and len(sub) == 2
    xyz_list, verts_list = json.loads(json.dumps(sub))
    assert len(xyz_list) == len(verts_list) == 3
    np.testing.assert_allclose(np.array(xyz_list[1]), pj[1], rtol=1e-6)
    assert np.array(verts_list[2]).shape == (778, 3)
    with pytest.raises(ValueError, match="pred_verts: expected shape"):
        freihand_submission(pj, pv[:, :700])

