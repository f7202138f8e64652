"""One module per subcommand; :data:`COMMANDS` is the order ``--help`` lists them in.

Command modules stay thin (parse, validate, call core, write) and import heavy
libraries (torch, the renderer) inside the command function so ``--help`` is fast.
"""

from handtools.commands import info, predict, pretrain, synth
from handtools.commands import evaluate
from handtools.commands import render
from handtools.commands import crop, detect, mask
from handtools.commands import import_

COMMANDS = [
    ("synth", synth.synth),
    ("import", import_.app),
    ("info", info.info),
    ("pretrain", pretrain.pretrain),
    ("predict", predict.predict),
    ("evaluate", evaluate.evaluate),
    ("render", render.render),
    ("detect", detect.detect),
    ("crop", crop.crop),
    ("mask", mask.mask),
]
