"""Multi-domain synthetic abdominal scans with exact liver masks — liverwild's embedded default.

Each *domain* renders the same distribution of random anatomies (:mod:`.anatomy`) the way one
scanner/protocol would (:mod:`.domains`, :mod:`.render`), so that leave-one-domain-out experiments
can run offline. ``write_phantoms(DIR)`` writes one raw dataset per domain under ``DIR``.
"""

from .domains import DOMAINS, Domain, register_domain
from .generate import generate_case, save_preview, write_domain, write_phantoms
from .tissues import LIVER_TISSUES, Tissue

__all__ = [
    "DOMAINS",
    "Domain",
    "register_domain",
    "generate_case",
    "save_preview",
    "write_domain",
    "write_phantoms",
    "Tissue",
    "LIVER_TISSUES",
]
