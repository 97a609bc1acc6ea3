"""Losses of the meta-learning baselines (MASF, TaskAug): class-level alignment between domains and
pixel-level metric learning. Binary segmentation: class 0 background, class 1 liver; a class absent
from a domain's batch is left out of every term that needs it.

- :func:`class_soft_labels` — per class, the temperature-softened prediction of the class-mean feature:
  with a linear last layer this is ``softmax([0, z̄_c] / τ)`` where ``z̄_c`` is the mean logit over the
  pixels of class ``c`` (MASF's ``s_c = softmax(T(z̄_c) / τ)``, masked per pixel class).
- :func:`symmetric_kl_alignment` — MASF's global class alignment: ``½ [KL(s_i‖s_j) + KL(s_j‖s_i)]``
  averaged over the classes present in both domains.
- :func:`batch_hard_triplet_loss` — MASF's local sample clustering: triplet loss
  ``max(0, d(a, p)² − d(a, n)² + ξ)`` with the hardest positive and negative of each anchor.
- :func:`modality_distillation_loss` — Dou et al.'s (TMI 2020) knowledge-distillation loss between
  two modalities: ``(1/C) Σ_c [KL(p_c^a‖p_c^b) + KL(p_c^b‖p_c^a)]`` over the classes present in both.
- :func:`sample_class_pixels` — at most ``n`` random pixels per class of each domain's batch.
- :func:`centroid_cosine_alignment` — TaskAug's feature alignment: ``1 − cos`` between the class
  centroids of two sets of pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CLASSES = (0, 1)


def class_soft_labels(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 2.0) -> dict:
    """``{class: soft label (2,)}`` for the classes present in ``labels`` (logits and labels ``(B, 1, H, W)``)."""
    out = {}
    z = logits.float().flatten()
    y = labels.flatten() > 0.5
    for c in CLASSES:
        mask = y if c == 1 else ~y
        if mask.any():
            mean_logit = z[mask].mean()
            out[c] = torch.softmax(torch.stack([torch.zeros_like(mean_logit), mean_logit]) / temperature, dim=0)
    return out


def symmetric_kl_alignment(a: dict, b: dict, eps: float = 1e-8) -> torch.Tensor:
    """Mean over the shared classes of ``½ [KL(a_c‖b_c) + KL(b_c‖a_c)]``; 0 when none is shared."""
    terms = []
    for c in sorted(set(a) & set(b)):
        p, q = a[c].clamp_min(eps), b[c].clamp_min(eps)
        terms.append(0.5 * ((p * (p / q).log()).sum() + (q * (q / p).log()).sum()))
    if not terms:
        shared = [*a.values(), *b.values()]
        return torch.zeros((), device=shared[0].device) if shared else torch.zeros(())
    return torch.stack(terms).mean()


def modality_distillation_loss(
    logits: torch.Tensor, labels: torch.Tensor, modalities: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """Dou et al.'s ``L_kd`` between the two modalities of a batch (``modalities``: 0 or 1 per item):
    ``(1/C) Σ_c [KL(p_c^0‖p_c^1) + KL(p_c^1‖p_c^0)]``, ``p_c^m`` the soft label of class ``c`` over the
    pixels of ``c`` in modality ``m``'s items (:func:`class_soft_labels`: the one liver logit ``l`` is the
    two-class softmax of ``[0, l]``), the mean over the ``C`` classes present in both parts (0 when none)."""
    soft = [class_soft_labels(logits[modalities == m], labels[modalities == m], temperature) for m in (0, 1)]
    return 2 * symmetric_kl_alignment(soft[0], soft[1])


def sample_class_pixels(
    embeddings: torch.Tensor, labels: torch.Tensor, n: int, generator: torch.Generator | None = None
) -> tuple:
    """At most ``n`` pixels per class: ``(vectors (M, E), classes (M,))`` from embeddings ``(B, E, H, W)``
    and labels ``(B, 1, H, W)``."""
    e = embeddings.permute(0, 2, 3, 1).reshape(-1, embeddings.shape[1])
    y = (labels.flatten() > 0.5).long()
    vectors, classes = [], []
    for c in CLASSES:
        idx = torch.nonzero(y == c).flatten()
        if idx.numel() == 0:
            continue
        pick = torch.randperm(idx.numel(), generator=generator, device="cpu")[:n].to(idx.device)
        vectors.append(e[idx[pick]])
        classes.append(torch.full((pick.numel(),), c, dtype=torch.long, device=e.device))
    if not vectors:
        return e[:0], y[:0]
    return torch.cat(vectors), torch.cat(classes)


def batch_hard_triplet_loss(vectors: torch.Tensor, classes: torch.Tensor, margin: float = 0.5) -> torch.Tensor:
    """Mean over anchors of ``max(0, max_p d(a,p)² − min_n d(a,n)² + margin)``; anchors without a positive
    or a negative are skipped (0 when none is left)."""
    d2 = torch.cdist(vectors.float(), vectors.float()).pow(2)
    same = classes[:, None] == classes[None, :]
    eye = torch.eye(len(classes), dtype=torch.bool, device=vectors.device)
    pos = same & ~eye
    neg = ~same
    usable = pos.any(1) & neg.any(1)
    if not usable.any():
        return 0 * vectors.float().sum()
    hardest_pos = torch.where(pos, d2, torch.full_like(d2, -1.0)).amax(1)
    hardest_neg = torch.where(neg, d2, torch.full_like(d2, float("inf"))).amin(1)
    return F.relu(hardest_pos - hardest_neg + margin)[usable].mean()


def class_centroids(vectors: torch.Tensor, classes: torch.Tensor) -> dict:
    """``{class: mean vector}`` of the classes present."""
    return {c: vectors[classes == c].mean(0) for c in CLASSES if (classes == c).any()}


def centroid_cosine_alignment(a: dict, b: dict) -> torch.Tensor:
    """Mean over the shared classes of ``1 − cos(a_c, b_c)``; 0 when none is shared."""
    terms = [1 - F.cosine_similarity(a[c].float(), b[c].float(), dim=0) for c in sorted(set(a) & set(b))]
    if not terms:
        shared = [*a.values(), *b.values()]
        return torch.zeros((), device=shared[0].device) if shared else torch.zeros(())
    return torch.stack(terms).mean()
