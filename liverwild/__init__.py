"""liverwild — liver segmentation in abdominal CT and MR *in the wild*.

Implements the contrastive-distillation method of Fogarollo et al. (IJCARS 2023) as a
self-configuring, nnU-Net-style pipeline. Sub-packages, lowest layer first:

- ``liverwild.io``        read/write images with geometry, DICOM series, reorientation
- ``liverwild.datasets``  the raw dataset format (dataset.json) and its verifier
- ``liverwild.phantoms``  multi-domain synthetic abdominal scans (the embedded default)
- ``liverwild.cli``       thin argparse wrappers, one module per console script

``liverwild.segment(input, output=None, **options)`` (:mod:`liverwild.api`) runs ``lw_predict`` from
Python and returns the masks (SimpleITK images) and per-organ statistics (pandas).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``liverwild.segment`` (:func:`liverwild.api.segment`), imported on first use: ``import liverwild``
    stays light."""
    if name in ("segment", "Segmentation"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'liverwild' has no attribute {name!r}")
