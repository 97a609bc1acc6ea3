"""Helpers shared by the console scripts: folder options, error reporting, exit codes."""

from __future__ import annotations

import argparse
import errno
import os
import sys

from ..errors import LiverwildError

FULL_DISK = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def add_folder_options(parser: argparse.ArgumentParser, *kinds: str) -> None:
    """Add --raw / --preprocessed / --results (each overriding its LW_* variable)."""
    helps = {
        "raw": "raw datasets folder (default: $LW_raw)",
        "preprocessed": "preprocessed data folder (default: $LW_preprocessed)",
        "results": "results folder (default: $LW_results)",
    }
    for kind in kinds:
        parser.add_argument(f"--{kind}", metavar="DIR", default=None, help=helps[kind])


def run(function, *args, **kwargs) -> int:
    """Call ``function``; turn a :class:`LiverwildError` into a one-line message and exit code 1."""
    try:
        result = function(*args, **kwargs)
    except LiverwildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in FULL_DISK:
            raise
        print(
            f"error: {exc.filename or 'an output file'}: cannot be written — {os.strerror(exc.errno or 0)} (disk full "
            "or file-size limit); no partial file was kept, re-run once there is room",
            file=sys.stderr,
        )
        return 1
    return 0 if result is None or result is True else (result if isinstance(result, int) else 0)
