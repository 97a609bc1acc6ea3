"""Turn a fingerprint and the user's choices into :class:`~planning.plans.Plans`."""
from __future__ import annotations

from liverwild.backbones import DEFAULT_BACKBONE, weights_tag

from .plans import Plans, default_augmentation, default_normalization


def plan_dataset(fingerprint: dict, backbone: str = DEFAULT_BACKBONE, weights=None, views: int = 2,
                 slice_size: int = 224, feature_dtype: str = "float16", seed: int = 0) -> Plans:
    """Plans for one dataset. ``weights``: file path, 'timm-cache', 'random' or None (decided later)."""
    plans = Plans(dataset=fingerprint["dataset"], modality=fingerprint["modality"],
                  normalization=default_normalization(fingerprint["modality"], fingerprint.get("aggregate")),
                  slice_size=[slice_size, slice_size], feature_dtype=feature_dtype,
                  augmentation=default_augmentation(views, seed))
    plans.backbone["name"] = backbone
    plans.backbone["weights"] = str(weights) if weights is not None else None
    plans.backbone["weights_tag"] = weights_tag(weights) if weights is not None else None
    return plans
