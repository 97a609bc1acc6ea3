"""Tissue codes of the phantom anatomy (a uint8 map painted before rendering intensities).

The tissue map doubles as the phantom's organ map (``labelsTr_organs/``). Codes that differ only in
which organ they belong to render alike (:data:`APPEARANCE`): the left kidney's cortex and medulla
look exactly like the right kidney's, so splitting them changed no phantom image.
"""

from enum import IntEnum


class Tissue(IntEnum):
    AIR = 0
    FAT = 1
    MUSCLE = 2
    LIVER = 3
    LIVER_VESSEL = 4  # portal and hepatic veins inside the liver (labelled liver)
    LESION = 5  # hypodense lesion inside the liver (labelled liver: tumour counts as liver)
    SPLEEN = 6
    KIDNEY_CORTEX = 7
    KIDNEY_MEDULLA = 8
    AORTA = 9
    VEIN = 10  # inferior vena cava, portal trunk outside the liver
    BONE = 11  # cortical bone
    MARROW = 12  # cancellous bone
    CSF = 13  # spinal canal
    STOMACH = 14  # stomach content
    BOWEL = 15
    GAS = 16  # gas inside the bowel or stomach
    LUNG = 17
    HEART = 18
    GALLBLADDER = 19
    TABLE = 20  # scanner table (outside the patient)
    DISC = 21  # intervertebral disc
    LEFT_KIDNEY_CORTEX = 22  # KIDNEY_CORTEX and KIDNEY_MEDULLA are the right kidney's
    LEFT_KIDNEY_MEDULLA = 23


LIVER_TISSUES = (Tissue.LIVER, Tissue.LIVER_VESSEL, Tissue.LESION)

APPEARANCE = {Tissue.LEFT_KIDNEY_CORTEX: Tissue.KIDNEY_CORTEX, Tissue.LEFT_KIDNEY_MEDULLA: Tissue.KIDNEY_MEDULLA}
"""Tissue → the tissue whose intensities it takes in every domain (codes that mark another organ only)."""

RENDERED_TISSUES = tuple(t for t in Tissue if t not in APPEARANCE)
"""The tissues that have intensities of their own (what a domain lists)."""

LABEL_NAMES = {
    Tissue.LESION: "liver_lesion",
    Tissue.KIDNEY_CORTEX: "right_kidney_cortex",
    Tissue.KIDNEY_MEDULLA: "right_kidney_medulla",
}
"""Organ-map label names (``dataset.json`` ``organ_labels``) that say more than the tissue's name."""


def label_name(tissue: Tissue) -> str:
    """The name of ``tissue`` in a phantom dataset's ``organ_labels``."""
    return LABEL_NAMES.get(tissue, tissue.name.lower())
