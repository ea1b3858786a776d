"""Label-smoothed cross-entropy that ignores padding (paper section 5.4)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossSums:
    """Sums over the non-pad target tokens of a batch; divide by `n_tokens` for means.

    Attributes:
        loss: () float32, the label-smoothed loss summed over tokens (what is optimised).
        nll: () float32, the plain negative log-likelihood summed over tokens (for perplexity).
        n_tokens: () int64, the number of non-pad target tokens.
    """

    loss: torch.Tensor
    nll: torch.Tensor
    n_tokens: torch.Tensor


def label_smoothed_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, smoothing: float, pad_id: int
) -> LossSums:
    """Cross-entropy against `(1 - smoothing) * one_hot + smoothing / V`, summed over tokens.

    The same target distribution as `F.cross_entropy(..., label_smoothing=smoothing)`: the
    smoothing mass is spread uniformly over all V classes. Computed in float32 from one
    log-softmax, so the smoothed loss and the plain NLL come from the same pass.

    Args:
        logits: (B, T, V) any float dtype, the decoder's output scores.
        target: (B, T) int64, the expected next tokens (`tgt_out`), `pad_id` where padded.
        smoothing: the label-smoothing epsilon, in [0, 1).
        pad_id: the padding id; those positions add nothing to any sum.

    Returns:
        Sums of the smoothed loss and of the NLL, and the token count.
    """
    vocab_size = logits.size(-1)
    log_probs = F.log_softmax(logits.float(), dim=-1).view(-1, vocab_size)  # (B*T, V)
    target = target.reshape(-1)  # (B*T,)
    keep = target != pad_id  # (B*T,)
    nll = -log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (B*T,)
    uniform = -log_probs.mean(dim=-1)  # (B*T,)
    loss = (1.0 - smoothing) * nll + smoothing * uniform
    zero = torch.zeros((), dtype=loss.dtype, device=loss.device)
    return LossSums(
        loss=torch.where(keep, loss, zero).sum(),
        nll=torch.where(keep, nll, zero).sum(),
        n_tokens=keep.sum(),
    )
