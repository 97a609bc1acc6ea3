"""Folder configuration, nnU-Net style.

Three folders hold everything liverwild writes:

=================  ===================  ==========================================
variable           command-line option  content
=================  ===================  ==========================================
``LW_raw``         ``--raw DIR``        raw datasets: ``<Name>/imagesTr``, ``labelsTr``, ``dataset.json``
``LW_preprocessed``  ``--preprocessed DIR``  fingerprints, plans, caches, ``splits.json``
``LW_results``     ``--results DIR``    trained models, logs, predictions
=================  ===================  ==========================================

An option always wins over the environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigurationError

FOLDERS = {
    "raw": ("LW_raw", "--raw", "raw datasets"),
    "preprocessed": ("LW_preprocessed", "--preprocessed", "preprocessed data"),
    "results": ("LW_results", "--results", "trained models and results"),
}


def resolve_folder(kind: str, option: str | os.PathLike | None = None, must_exist: bool = False) -> Path:
    """Return the folder for ``kind`` ('raw', 'preprocessed' or 'results').

    ``option`` (a command-line value) wins over the ``LW_*`` environment variable. Raises
    :class:`ConfigurationError` naming both the variable and the option when neither is set.
    """
    variable, flag, what = FOLDERS[kind]
    value = option if option not in (None, "") else os.environ.get(variable)
    if not value:
        raise ConfigurationError(f"No folder for {what}: set the environment variable {variable} or pass {flag} DIR.")
    path = Path(value).expanduser()
    if must_exist and not path.is_dir():
        source = flag if option else variable
        raise ConfigurationError(f"The folder for {what} ({source}={path}) does not exist.")
    return path


def raw_folder(option=None, must_exist=False) -> Path:
    return resolve_folder("raw", option, must_exist)


def preprocessed_folder(option=None, must_exist=False) -> Path:
    return resolve_folder("preprocessed", option, must_exist)


def results_folder(option=None, must_exist=False) -> Path:
    return resolve_folder("results", option, must_exist)
