"""liverwild — liver segmentation in abdominal CT and MR *in the wild*.

Implements the contrastive-distillation method of Fogarollo et al. (IJCARS 2023) as a
self-configuring, nnU-Net-style pipeline. Sub-packages, lowest layer first:

- ``liverwild.io``        read/write images with geometry, DICOM series, reorientation
- ``liverwild.datasets``  the raw dataset format (dataset.json) and its verifier
- ``liverwild.phantoms``  multi-domain synthetic abdominal scans (the embedded default)
- ``liverwild.cli``       thin argparse wrappers, one module per console script
"""

__version__ = "0.1.0"
