"""Helpers shared by the console scripts: folder, logging and ``--version`` options, error reporting, exit
codes."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable
from importlib import import_module

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


class VersionAction(argparse.Action):
    """``--version``: print :func:`liverwild.revision.version_line` and exit 0. The git revision is read
    only when the option is given (argparse's ``version`` action would run git at every parse)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from ..revision import version_line

        print(version_line())
        parser.exit()


def at_least(minimum: int) -> Callable[[str], int]:
    """argparse ``type`` of a count or size: an integer ``≥ minimum``, else refused when parsed (a batch of
    -1 slices would run no batch at all)."""

    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    return whole_number


def positive_float(text: str) -> float:
    """argparse ``type`` of a rate or scale: a finite number above 0, else refused when parsed."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"{value} is not above 0")
    return value


class RegisteredName:
    """argparse ``type`` of an option naming an entry of a registry (``module``'s dict ``registry``): the
    registry is imported when a value is checked, not when the parser is built or ``--help`` printed
    (the trainers' and the adaptation methods' modules import torch, about 2.5 s); an unknown name is
    refused with the registered ones."""

    def __init__(self, module: str, registry: str, what: str):
        self.module, self.registry, self.what = module, registry, what

    def __call__(self, value: str) -> str:
        names = sorted(getattr(import_module(self.module), self.registry))
        if value not in names:
            raise argparse.ArgumentTypeError(f"unknown {self.what} {value!r}; choose from {', '.join(names)}")
        return value


def add_logging_options(parser: argparse.ArgumentParser) -> None:
    """``-v`` (debug messages too), ``-q`` (warnings and errors only) and ``--version``: every command
    calls this, so every command has them."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="store_true", help="also print debug messages")
    group.add_argument("-q", "--quiet", action="store_true", help="print warnings and errors only")
    parser.add_argument("--version", action=VersionAction, help="print liverwild's version and git revision, then exit")


def add_settings_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--set KEY=VALUE ...``: a field of the trainer configuration that the trainer reads (into
    ``args.settings``)."""
    parser.add_argument("--set", dest="settings", nargs="+", default=[], metavar="KEY=VALUE", help=help_text)


def config_changes(args: argparse.Namespace, *options: str) -> dict:
    """What the command line changes in a trainer configuration: ``--set`` (each value checked against its
    field's type), then the named options (config field names) that were given."""
    from ..training import parse_settings

    given = {name: getattr(args, name) for name in options if getattr(args, name) is not None}
    return {**parse_settings(args.settings), **given}


def trainer_config(args: argparse.Namespace, trainer: str, *options: str):
    """The configuration (its family's) of the command line for ``trainer``: its defaults (the trainer's
    recipe), then :func:`config_changes` — refused when the trainer does not read a field they set, or
    its overrides would replace one (:func:`liverwild.training.registry.check_changes`)."""
    from ..training.registry import check_changes, get_trainer

    cls = get_trainer(trainer)
    changes = config_changes(args, *options)
    check_changes(cls, changes)
    return cls.default_config().updated(**changes)


def parse(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse the command line and configure the ``liverwild`` logger from ``-v`` / ``-q``."""
    from ..log import configure_logging

    args = parser.parse_args(argv)
    configure_logging(int(getattr(args, "verbose", False)) - int(getattr(args, "quiet", False)))
    return args


def freeze_objects_at_exit() -> None:
    """At the interpreter's exit, move every object to the permanent generation (:func:`gc.freeze`), so that
    the final garbage collection skips walking the hundreds of thousands that SciPy, onnxruntime or torch
    created: a command's process ends sooner (``lw_predict`` on one scan: about 0.07 s of its 3.5 s on a
    2-core Xeon). Objects are still released by reference counting and exit hooks still run; only cyclic
    garbage left at exit goes to the operating system without ``__del__`` calls (which Python never promises
    at exit; liverwild writes every file atomically and closes it before the rename, so none is left
    unflushed). Registered once per process."""
    global _FREEZE_REGISTERED
    if not _FREEZE_REGISTERED:
        import atexit
        import gc

        atexit.register(gc.freeze)  # exit hooks run last-registered first: this one after the command's
        _FREEZE_REGISTERED = True


_FREEZE_REGISTERED = False


def run(function, *args, **kwargs) -> int:
    """Call ``function``; turn a :class:`LiverwildError` into a one-line message and exit code 1. The
    process's final garbage collection is skipped (:func:`freeze_objects_at_exit`)."""
    freeze_objects_at_exit()
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
