"""Organ classes harmonised across datasets, and the phantoms' organ maps."""

import numpy as np

from liverwild.datasets.conversion.nifti import AMOS, BTCV, AbdomenCT1K
from liverwild.datasets.organs import ORGANS, class_values, common_classes, organ_of, to_class_map
from liverwild.io import Reorientation
from liverwild.phantoms import DOMAINS, Tissue, generate_case
from liverwild.phantoms.generate import organ_labels
from liverwild.phantoms.render import _lookup
from liverwild.phantoms.tissues import APPEARANCE


def test_label_names_map_to_organs_by_name_alias_or_part():
    assert organ_of("Liver") == "liver" and organ_of("liver_lesion") == "liver" and organ_of("liver-vessel") == "liver"
    assert organ_of("kidney_left") == "left_kidney" and organ_of("left_kidney_cortex") == "left_kidney"
    assert organ_of("right_kidney") is None and organ_of("kidney") is None  # not the left one
    assert organ_of("oesophagus") == "esophagus" and organ_of("aorta") is None
    assert organ_of("tumor") is None  # a kidney dataset's tumour is not liver


def test_converted_datasets_offer_the_organs_they_label():
    btcv = class_values(BTCV.organ_labels)
    assert list(btcv) == ["spleen", "left_kidney", "gallbladder", "esophagus", "liver", "stomach", "pancreas"]
    assert btcv["liver"] == [6] and btcv["pancreas"] == [11] and btcv["left_kidney"] == [3]
    amos = class_values(AMOS.organ_labels)
    assert list(amos) == list(ORGANS) and amos["duodenum"] == [13] and amos["pancreas"] == [10]
    assert list(class_values(AbdomenCT1K.organ_labels)) == ["spleen", "liver", "pancreas"]
    assert class_values(None) == {"liver": [1]}  # no organ maps: the liver label alone
    assert class_values({"liver": [1, 2], "liver_tumour": 3}) == {"liver": [1, 2, 3]}


def test_a_fold_trains_on_the_organs_every_source_labels():
    assert common_classes([list(ORGANS), ["liver", "spleen"], ["pancreas", "spleen", "liver"]]) == ["spleen", "liver"]
    assert common_classes([["spleen"], ["liver"]]) == []


def test_class_maps_number_organs_in_the_given_order_and_drop_the_rest():
    labels = np.array([[[0, 6, 3, 8, 11]]])  # BTCV: liver, left kidney, aorta, pancreas
    values = class_values(BTCV.organ_labels)
    assert to_class_map(labels, values, ["liver", "left_kidney"]).tolist() == [[[0, 1, 2, 0, 0]]]


def test_phantom_organ_maps_name_seven_organs_and_the_left_kidney_lies_on_the_patients_left():
    organs = ["spleen", "left_kidney", "gallbladder", "liver", "stomach", "pancreas", "duodenum"]
    assert list(class_values(organ_labels())) == organs  # all the paper's eight but the oesophagus
    image, label, tissues = generate_case(DOMAINS["PhantomPortalCT"].scaled(0.4), seed=0, case=1, n_slices=40)
    left = np.isin(tissues, [Tissue.LEFT_KIDNEY_CORTEX, Tissue.LEFT_KIDNEY_MEDULLA])
    right = np.isin(tissues, [Tissue.KIDNEY_CORTEX, Tissue.KIDNEY_MEDULLA])
    assert left.any() and right.any()
    # canonical (LPS) x runs towards the patient's left: the left kidney has the larger x index
    assert np.argwhere(left)[:, 2].mean() > tissues.shape[2] / 2 > np.argwhere(right)[:, 2].mean()
    # and the stored scan's organ map says the same once reoriented (the tissue map is canonical)
    canonical_label = Reorientation.from_geometry(image.geometry).to_canonical(label.array)
    assert np.array_equal(canonical_label, np.isin(tissues, [3, 4, 5]))


def test_organ_only_codes_render_exactly_like_the_tissue_they_copy():
    for domain in DOMAINS.values():
        means, textures = _lookup(domain)
        for code, like in APPEARANCE.items():
            assert means[code] == means[like] and textures[code] == textures[like]
