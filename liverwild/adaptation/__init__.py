"""Adapt a trained model to the user's unlabelled scans (``lw_adapt``): AdaBN, TENT-style entropy
minimisation and feature-level adversarial alignment; see ``documentation/adaptation.md``."""

from .methods import METHODS, AdaptationSettings, get_method, register_method
from .run import adapt_model

__all__ = ["METHODS", "AdaptationSettings", "adapt_model", "get_method", "register_method"]
