"""Outliers made from the training photos themselves, for a model classifier that should say "not a car I know".

    python -c "import torch; from carscope.train.outliers import MixOutliers; m = MixOutliers([0, 0, 1], 0.5, 0); \
x, soft, mixed = m(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 2, 2])); print(mixed)"

Mixture Outlier Exposure (Zhang et al., WACV 2023, "Mixture Outlier Exposure: Towards Out-of-Distribution Detection
in Fine-grained Environments"): a fine-grained classifier sees photos of classes it does not know that share parts
with classes it does. Here a share of each batch is replaced by a CutMix of two photos of different makes: a box of
the second photo pasted into the first. Its target is the first photo's class in proportion to the area it keeps,
and uniform over every class for the rest, so the network learns to spread its probability over a car whose parts
come from different makes instead of naming one. Nothing outside the training photos is needed. `--mix-outliers F`
(carscope/train/options.py) turns it on for the model task.
"""

from __future__ import annotations

import math
import random


class MixOutliers:
    """Replace a share of each batch with cross-make CutMix outliers (on the uint8 batch, on the host)."""

    def __init__(self, make_of, share: float, seed: int):
        self.make_of = [int(m) for m in make_of]  # class -> make code (classes with no make: their own)
        self.classes = len(self.make_of)
        self.share = float(share)
        self.rng = random.Random(seed)

    def __call__(self, x, y):
        """(x with outliers pasted in, soft targets B x K, float mask of the mixed rows). `x`: uint8 NCHW, `y`: int64."""
        import torch

        n = len(y)
        src, x = x, x.clone()  # boxes come from the photos as loaded, never from an already mixed one
        labels = y.tolist()
        soft = torch.zeros(n, self.classes)
        soft[torch.arange(n), y] = 1.0
        mixed = torch.zeros(n)
        h, w = x.shape[-2:]
        for i in range(n):
            if self.rng.random() >= self.share:
                continue
            others = [j for j in range(n) if self.make_of[labels[j]] != self.make_of[labels[i]]]
            if not others:
                continue
            j = self.rng.choice(others)
            lam = self.rng.uniform(0.0, 1.0)  # Beta(1, 1): the share of the first photo's area kept
            bh, bw = int(round(h * math.sqrt(1 - lam))), int(round(w * math.sqrt(1 - lam)))
            if bh == 0 or bw == 0:
                continue
            top, left = self.rng.randrange(h - bh + 1), self.rng.randrange(w - bw + 1)
            x[i, :, top:top + bh, left:left + bw] = src[j, :, top:top + bh, left:left + bw]
            kept = 1 - bh * bw / (h * w)
            soft[i] = kept * soft[i] + (1 - kept) / self.classes
            mixed[i] = 1.0
        return x, soft, mixed


def mixed_loss(logits, y, soft, mixed, label_smoothing: float):
    """Per photo: cross-entropy (with label smoothing) for the kept photos, cross-entropy against the soft target
    for the mixed ones; the batch mean. No host sync: masks multiply, nothing is indexed by a device boolean."""
    import torch

    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none", label_smoothing=label_smoothing)
    soft_ce = -(soft * torch.log_softmax(logits, dim=1)).sum(dim=1)
    return ((1 - mixed) * ce + mixed * soft_ce).mean()
