"""One module per subcommand; :data:`COMMANDS` is the order ``--help`` lists them in.

Command modules stay thin (parse, validate, call core, write) and import heavy
libraries (torch, the renderer) inside the command function so ``--help`` is fast.
"""

from handtools.commands import (
    crop,
    demo,
    detect,
    evaluate,
    import_,
    info,
    mask,
    personalize,
    predict,
    pretrain,
    render,
    selfsup_mono,
    selfsup_stereo,
    synth,
)

COMMANDS = [
    ("demo", demo.demo),
    ("synth", synth.synth),
    ("import", import_.app),
    ("detect", detect.detect),
    ("crop", crop.crop),
    ("mask", mask.mask),
    ("pretrain", pretrain.pretrain),
    ("selfsup-stereo", selfsup_stereo.selfsup_stereo),
    ("selfsup-mono", selfsup_mono.selfsup_mono),
    ("personalize", personalize.personalize),
    ("predict", predict.predict),
    ("evaluate", evaluate.evaluate),
    ("render", render.render),
    ("info", info.info),
]
