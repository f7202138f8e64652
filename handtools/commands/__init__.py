"""One module per subcommand; :data:`COMMANDS` is the order ``--help`` lists them in.

Each command function is wrapped to record its resolved configuration
(:func:`handtools.runconfig.recorded`). Command modules stay thin (parse, validate, call core, write) and import heavy
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

from handtools.runconfig import recorded

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


def _record_configs() -> None:
    """Every command records its resolved configuration while it runs (:mod:`handtools.runconfig`)."""
    for k, (name, func) in enumerate(COMMANDS):
        if hasattr(func, "registered_commands"):  # a group (import): its commands
            for sub in func.registered_commands:
                sub.callback = recorded((name, sub.name), sub.callback)
        else:
            COMMANDS[k] = (name, recorded((name,), func))


_record_configs()
