"""The console scripts setup.py installs (read from setup.py, so the tests follow it)."""

import ast
from pathlib import Path

_tree = ast.parse((Path(__file__).resolve().parents[1] / "setup.py").read_text(encoding="utf-8"))
COMMANDS = next(
    ast.literal_eval(node.value)
    for node in _tree.body
    if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "COMMANDS"
)
