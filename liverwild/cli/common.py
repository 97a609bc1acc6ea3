"""Helpers shared by the console scripts: folder options, error reporting, exit codes."""
from __future__ import annotations

import argparse
import sys

from ..errors import LiverwildError, NotAvailableYet


def add_folder_options(parser: argparse.ArgumentParser, *kinds: str) -> None:
    """Add --raw / --preprocessed / --results (each overriding its LW_* variable)."""
    helps = {"raw": "raw datasets folder (default: $LW_raw)",
             "preprocessed": "preprocessed data folder (default: $LW_preprocessed)",
             "results": "results folder (default: $LW_results)"}
    for kind in kinds:
        parser.add_argument(f"--{kind}", metavar="DIR", default=None, help=helps[kind])


def run(function, *args, **kwargs) -> int:
    """Call ``function``; turn a :class:`LiverwildError` into a one-line message and exit code 1."""
    try:
        result = function(*args, **kwargs)
    except NotAvailableYet as exc:
        print(f"not available yet: {exc}", file=sys.stderr)
        return 2
    except LiverwildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0 if result is None or result is True else (result if isinstance(result, int) else 0)


def not_available(command: str, issue: str, parser: argparse.ArgumentParser, argv=None) -> int:
    """Parse arguments (so --help works) and say plainly that the command is not implemented yet."""
    parser.parse_args(argv)
    print(f"{command}: not available yet in liverwild {__import__('liverwild').__version__} "
          f"({issue}). Nothing was done.", file=sys.stderr)
    return 2
