"""The organ classes of the ``3d`` configuration, harmonised across datasets.

Every dataset names its label values its own way (BTCV ``left_kidney``: 3, AMOS ``left_kidney``: 3,
CHAOS MR ``left_kidney``: 3, the phantoms' tissue codes ``left_kidney_cortex``, ...). The ``3d``
configuration segments the eight organs of the source paper (Lee et al., voxel-level Siamese
representation learning; the Gibson et al. set), in this order::

    spleen, left_kidney, gallbladder, esophagus, liver, stomach, pancreas, duodenum

:func:`class_values` maps a dataset's ``organ_labels`` (``dataset.json``: name → value) onto these
organs: a label belongs to an organ when its name is the organ's name, one of its aliases, or the
organ's name followed by ``_`` and a part (``liver_vessel``, ``left_kidney_cortex``). Labels of no
organ (aorta, bowel, fat, ...) are background. An organ a dataset does not label is absent from it;
a dataset with no organ map offers ``liver`` alone (its ``labelsTr`` value). The mapping is written
into ``plans.json`` (``3d.label_values``), where a user can correct it by hand.
"""

from __future__ import annotations

import numpy as np

ORGANS = ("spleen", "left_kidney", "gallbladder", "esophagus", "liver", "stomach", "pancreas", "duodenum")

ALIASES = {  # other spellings in public datasets (TotalSegmentator: kidney_left)
    "spleen": (),
    "left_kidney": ("kidney_left", "kidney_l", "l_kidney"),
    "gallbladder": ("gall_bladder",),
    "esophagus": ("oesophagus",),
    "liver": (),  # liver_tumour, liver_vessel, liver_lesion: parts of the liver, as in the 2D configuration
    "stomach": (),
    "pancreas": (),
    "duodenum": (),
}


def organ_of(label_name: str) -> str | None:
    """The organ a label name belongs to, or ``None`` (case and separators ignored)."""
    name = label_name.strip().lower().replace(" ", "_").replace("-", "_")
    for organ in ORGANS:
        if name == organ or name in ALIASES[organ] or name.startswith(organ + "_"):
            return organ
    return None


def class_values(organ_labels: dict | None, liver_value: int = 1) -> dict[str, list[int]]:
    """``{organ: [label values]}`` in :data:`ORGANS` order for the organs a dataset labels.

    ``organ_labels``: ``dataset.json``'s ``organ_labels`` (name → value or list of values), or ``None``
    for a dataset without organ maps, which then offers ``{"liver": [liver_value]}`` (its ``labelsTr``).
    """
    if not organ_labels:
        return {"liver": [int(liver_value)]}
    found: dict[str, list[int]] = {}
    for name, value in organ_labels.items():
        organ = organ_of(str(name))
        if organ is None:
            continue
        values = value if isinstance(value, list) else [value]
        found.setdefault(organ, []).extend(int(v) for v in values)
    return {organ: sorted(set(found[organ])) for organ in ORGANS if organ in found}


def common_classes(per_source: list[list[str]]) -> list[str]:
    """The organs every source labels, in :data:`ORGANS` order: a fold trains on these, so that a voxel
    of an organ one source leaves unlabelled is background in every source alike."""
    shared = set(per_source[0]) if per_source else set()
    for classes in per_source[1:]:
        shared &= set(classes)
    return [organ for organ in ORGANS if organ in shared]


def to_class_map(label_map: np.ndarray, values: dict[str, list[int]], classes: list[str]) -> np.ndarray:
    """A dataset's label map → uint8 class indices: 0 background, ``k + 1`` for ``classes[k]``
    (``values``: organ → the label values that make it). Values of other organs become background."""
    out = np.zeros(label_map.shape, np.uint8)
    for index, organ in enumerate(classes, start=1):
        out[np.isin(label_map, values[organ])] = index
    return out


COMPETING_CLASSES = {
    "liver": ("liver",),
    "stomach": ("stomach",),
    "bowel": ("duodenum", "colon", "small_bowel", "small_intestine", "bowel", "rectum", "sigmoid"),
    "kidney": ("kidney", "left_kidney", "right_kidney", "l_kidney", "r_kidney"),
    "spleen": ("spleen",),
    "pancreas": ("pancreas",),
    "gallbladder": ("gallbladder", "gall_bladder"),
}
"""The 2D organ-competition classes (``OrganCompetitionTrainer``), the liver first: the organs that border
the liver in an axial slice. A label belongs to a class when its name is one of the class's names or one
of them followed by ``_`` and a part (``liver_vessel``, ``right_kidney_cortex``, ``kidney_left``)."""


def competing_class_values(organ_labels: dict | None) -> dict[str, list[int]]:
    """``{class: [label values]}`` in :data:`COMPETING_CLASSES` order for the classes an organ map names
    (``organ_labels``: ``dataset.json``'s name → value or list of values); ``{}`` without organ maps."""
    found: dict[str, list[int]] = {}
    for name, value in (organ_labels or {}).items():
        label = str(name).strip().lower().replace(" ", "_").replace("-", "_")
        for cls, names in COMPETING_CLASSES.items():
            if any(label == n or label.startswith(n + "_") for n in names):
                values = value if isinstance(value, list) else [value]
                found.setdefault(cls, []).extend(int(v) for v in values)
                break
    return {cls: sorted(set(found[cls])) for cls in COMPETING_CLASSES if cls in found}
