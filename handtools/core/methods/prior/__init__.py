"""Hand-prior pre-training (Chen et al., ICCV 2021, §3.1): config, supervised loss, predictor.

The network itself (ResNet + image-to-lixel regressor) is shared with the binocular
method and lives in :mod:`handtools.core.learning.nets.prior`.
"""

from handtools.core.methods.prior.config import PAPER, PriorConfig
from handtools.core.methods.prior.loss import PriorLoss
from handtools.core.methods.prior.predictor import PriorPredictor

__all__ = ["PAPER", "PriorConfig", "PriorLoss", "PriorPredictor"]
