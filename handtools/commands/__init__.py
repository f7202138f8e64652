"""One module per subcommand; :data:`COMMANDS` is the order ``--help`` lists them in.

Command modules stay thin (parse, validate, call core, write) and import heavy
libraries (torch, the renderer) inside the command function so ``--help`` is fast.
"""

from handtools.commands import info

COMMANDS = [
    ("info", info.info),
]
