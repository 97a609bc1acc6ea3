"""Contrastive correlation loss (method.md §2, after STEGO).

For maps a, b ``(B, C, h, w)`` the correlation tensor is the cosine similarity of every position of a
with every position of b: ``X[n, h, w, i, j] = <a[n,:,h,w], b[n,:,i,j]> / (|a||b|)``.

    L_cr(x, y, shift) = − mean_hwij ( S(X(F, x, y)) − shift ) · max( X(C∘F, x, y), 0 )

with S the spatial centring of the backbone correlation (subtract, for each (h, w), the mean over
(i, j)). A mean instead of the paper's sum keeps it independent of the map size, as in STEGO.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def tensor_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine correlation ``(B, h, w, i, j)`` of two ``(B, C, h, w)`` / ``(B, C, i, j)`` maps."""
    return torch.einsum("nchw,ncij->nhwij", F.normalize(a, dim=1, eps=1e-10), F.normalize(b, dim=1, eps=1e-10))


def contrastive_correlation_loss(features_x, features_y, code_x, code_y, shift: float):
    """Returns ``(loss, mean code correlation)``; the backbone features carry no gradient."""
    with torch.no_grad():
        fd = tensor_correlation(features_x.float(), features_y.float())
        fd = fd - fd.mean(dim=(3, 4), keepdim=True)
    cd = tensor_correlation(code_x.float(), code_y.float())
    loss = -((fd - shift) * cd.clamp(min=0.0)).mean()
    return loss, cd.detach().mean()


class ContrastiveDistillationLoss(nn.Module):
    """L_cd = L_cr(x, x, b_self) + L_cr(x, x⁺, b₊) + L_cr(x, x⁻, b₋), averaged over the given pairs.

    ``forward`` takes the anchor's features and code, and lists of (features, code) for positives and
    negatives; it returns the total and a dict with each term and the mean code similarity per pair
    kind (logged to check the paper's ≈0.05 / 0.0 / −0.05 end-of-training targets).
    """

    def __init__(self, b_self: float = 0.55, b_pos: float = 0.5, b_neg: float = 0.6):
        super().__init__()
        self.b_self, self.b_pos, self.b_neg = b_self, b_pos, b_neg

    def forward(self, features, code, positives=(), negatives=()):
        terms, sims = {}, {}
        terms["self"], sims["self"] = contrastive_correlation_loss(features, features, code, code, self.b_self)
        for kind, pairs, shift in (("pos", positives, self.b_pos), ("neg", negatives, self.b_neg)):
            if not pairs:
                continue
            losses, similarities = zip(*(contrastive_correlation_loss(features, f, code, c, shift) for f, c in pairs))
            terms[kind] = torch.stack(losses).mean()
            sims[kind] = torch.stack(similarities).mean()
        total = sum(terms.values())
        return total, {f"cd_{k}": v.detach() for k, v in terms.items()} | {f"sim_{k}": v for k, v in sims.items()}
