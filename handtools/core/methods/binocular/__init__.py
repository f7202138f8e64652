"""Self-supervised transfer from binocular images (Chen, Wang, Sun, Ma, ICCV 2021, §3.2).

``config`` (paper defaults, eq. 10 weights), ``model`` (the two-branch model and eq. 1),
``loss`` (eqs. 2-10), ``pseudo`` (eq. 5's pseudo labels), ``predictor`` (kind ``stereo``).
"""

from handtools.core.methods.binocular.config import ALL_LOSSES, DEPTH_LOSS, LOSS_NAMES, PAPER, BinocularConfig
from handtools.core.methods.binocular.loss import StereoSelfSupLoss
from handtools.core.methods.binocular.model import stereo_meshes, stereo_net_from_prior
from handtools.core.methods.binocular.predictor import StereoPredictor
from handtools.core.methods.binocular.pseudo import pseudo_meshes, pseudo_source

__all__ = ["ALL_LOSSES", "BinocularConfig", "DEPTH_LOSS", "LOSS_NAMES", "PAPER", "StereoPredictor",
           "StereoSelfSupLoss", "pseudo_meshes", "pseudo_source", "stereo_meshes", "stereo_net_from_prior"]
