"""Tissue codes of the phantom anatomy (uint8 maps painted before rendering intensities).

A phantom is painted in two layers (:class:`~liverwild.phantoms.shapes.Canvas`): the organ map
(``labelsTr_organs/``: which structure a voxel belongs to) and the lumen contents (fluid, gas, stool,
oral contrast inside the stomach and bowel), which render instead of the wall where they are set.
:data:`CONTENTS` never appear in an organ map. Codes that differ only in which organ they belong to
render alike (:data:`APPEARANCE`): the left kidney's cortex and medulla look exactly like the right
kidney's, the diaphragm like muscle, the walls of colon, small bowel and duodenum like bowel.
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
    STOMACH = 14  # stomach wall (its content is a lumen content)
    BOWEL = 15  # bowel wall appearance (the organ map names colon, small bowel and duodenum)
    GAS = 16  # gas inside the bowel or stomach (lumen content)
    LUNG = 17
    HEART = 18
    GALLBLADDER = 19
    TABLE = 20  # scanner table (outside the patient)
    DISC = 21  # intervertebral disc
    LEFT_KIDNEY_CORTEX = 22  # KIDNEY_CORTEX and KIDNEY_MEDULLA are the right kidney's
    LEFT_KIDNEY_MEDULLA = 23
    COLON = 24
    SMALL_BOWEL = 25
    DUODENUM = 26
    PANCREAS = 27
    DIAPHRAGM = 28
    ADRENAL_RIGHT = 29
    ADRENAL_LEFT = 30
    BLADDER = 31  # urinary bladder (urine)
    CARTILAGE = 32  # costal cartilage
    FLUID = 33  # water-like lumen content (stomach, bowel)
    STOOL = 34  # mottled faeces or food (lumen content)
    ORAL_CONTRAST = 35  # positive oral contrast (lumen content)
    ASCITES = 36  # free peritoneal fluid
    ILIAC_BONE = 37  # hip bone and sacrum (cortex; marrow inside is MARROW)


LIVER_TISSUES = (Tissue.LIVER, Tissue.LIVER_VESSEL, Tissue.LESION)

CONTENTS = (Tissue.GAS, Tissue.FLUID, Tissue.STOOL, Tissue.ORAL_CONTRAST)
"""Lumen contents: painted in the content layer only, never in an organ map."""

APPEARANCE = {
    Tissue.LEFT_KIDNEY_CORTEX: Tissue.KIDNEY_CORTEX,
    Tissue.LEFT_KIDNEY_MEDULLA: Tissue.KIDNEY_MEDULLA,
    Tissue.COLON: Tissue.BOWEL,
    Tissue.SMALL_BOWEL: Tissue.BOWEL,
    Tissue.DUODENUM: Tissue.BOWEL,
    Tissue.DIAPHRAGM: Tissue.MUSCLE,
    Tissue.ADRENAL_RIGHT: Tissue.MUSCLE,
    Tissue.ADRENAL_LEFT: Tissue.MUSCLE,
    Tissue.BLADDER: Tissue.FLUID,
    Tissue.ASCITES: Tissue.FLUID,
    Tissue.ILIAC_BONE: Tissue.BONE,
}
"""Tissue → the tissue whose intensities it takes in every domain (codes that mark another organ only)."""

RENDERED_TISSUES = tuple(t for t in Tissue if t not in APPEARANCE)
"""The tissues that have intensities of their own (what a domain lists)."""

LABEL_NAMES = {
    Tissue.LESION: "liver_lesion",
    Tissue.KIDNEY_CORTEX: "right_kidney_cortex",
    Tissue.KIDNEY_MEDULLA: "right_kidney_medulla",
    Tissue.ADRENAL_RIGHT: "adrenal_gland_right",
    Tissue.ADRENAL_LEFT: "adrenal_gland_left",
    Tissue.BLADDER: "urinary_bladder",
    Tissue.CARTILAGE: "costal_cartilage",
    Tissue.ILIAC_BONE: "hip",
}
"""Organ-map label names (``dataset.json`` ``organ_labels``) that say more than the tissue's name."""


def label_name(tissue: Tissue) -> str:
    """The name of ``tissue`` in a phantom dataset's ``organ_labels``."""
    return LABEL_NAMES.get(tissue, tissue.name.lower())
