"""S2HAND: model-based 3D hand reconstruction via self-supervised learning (Chen et al., CVPR 2021).

``config`` (paper defaults, supp. §2 weights, a CPU preset), ``model`` (encoder, the
Table 2-3 heads, decoding through MANO), ``loss`` (eqs. 3-11, supp. eqs. 1-4),
``mirror`` (left hands as right hands), ``predictor`` (checkpoint kind ``mono``).
"""

from handtools.core.methods.s2hand.config import CPU, LOSS_NAMES, PAPER, S2HandConfig, term_weights
from handtools.core.methods.s2hand.loss import S2HandLoss
from handtools.core.methods.s2hand.model import S2HandNet, build_s2hand, decode, mano_hand
from handtools.core.methods.s2hand.predictor import S2HandPredictor

__all__ = ["CPU", "LOSS_NAMES", "PAPER", "S2HandConfig", "S2HandLoss", "S2HandNet", "S2HandPredictor",
           "build_s2hand", "decode", "mano_hand", "term_weights"]
