"""Tissue codes of the phantom anatomy (a uint8 map painted before rendering intensities)."""

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


LIVER_TISSUES = (Tissue.LIVER, Tissue.LIVER_VESSEL, Tissue.LESION)
