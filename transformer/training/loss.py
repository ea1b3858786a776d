"""Label-smoothed cross-entropy that ignores padding (paper section 5.4).

The gradient is written out rather than left to autograd: for one token with softmax `p` and
smoothed target distribution `q = (1 - eps) * one_hot + eps / V`, d(loss)/d(logits) = p - q.
That is one new (tokens, V) tensor updated in place; autograd's chain through log-softmax, gather,
mean and the padding mask takes several, each with its own (tokens, V) temporary. With the
default recipe's 8k vocabulary that chain was about a tenth of a training step on a CPU;
`scripts/benchmark.py` times our model with either loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


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
    smoothing mass is spread uniformly over all V classes. Computed in float32 (or float64) from one
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
    target = target.reshape(-1)  # (B*T,)
    keep = target != pad_id  # (B*T,)
    scores = logits.to(torch.promote_types(logits.dtype, torch.float32))  # at least float32
    loss, nll = _SmoothedNLL.apply(scores.reshape(-1, vocab_size), target, keep, smoothing)
    return LossSums(loss=loss, nll=nll, n_tokens=keep.sum())


class _SmoothedNLL(torch.autograd.Function):
    """(N, V) scores -> the summed smoothed loss and the summed NLL over the kept rows."""

    @staticmethod
    def forward(
        ctx, logits: torch.Tensor, target: torch.Tensor, keep: torch.Tensor, smoothing: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs = F.log_softmax(logits, dim=-1)  # (N, V)
        nll = -log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (N,)
        uniform = -log_probs.mean(dim=-1)  # (N,)
        loss = (1.0 - smoothing) * nll + smoothing * uniform  # (N,)
        zero = torch.zeros((), dtype=loss.dtype, device=loss.device)
        ctx.save_for_backward(log_probs, target, keep)
        ctx.smoothing = smoothing
        ctx.set_materialize_grads(False)
        return torch.where(keep, loss, zero).sum(), torch.where(keep, nll, zero).sum()

    @staticmethod
    @once_differentiable  # the gradient is not itself differentiable: say so if asked
    def backward(
        ctx, grad_loss: torch.Tensor | None, grad_nll: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, None, None, None]:
        log_probs, target, keep = ctx.saved_tensors
        eps, vocab_size = ctx.smoothing, log_probs.size(-1)
        weight = keep.to(log_probs.dtype)  # (N,) 1 for real tokens, 0 for padding
        w_loss = weight * grad_loss if grad_loss is not None else torch.zeros_like(weight)
        w_nll = weight * grad_nll if grad_nll is not None else torch.zeros_like(weight)
        # Row i: (w_loss + w_nll) * p - w_loss * eps / V, minus ((1 - eps) w_loss + w_nll) at
        # the target.
        grad = log_probs.exp()  # (N, V) probabilities
        grad.mul_((w_loss + w_nll).unsqueeze(-1)).sub_((w_loss * (eps / vocab_size)).unsqueeze(-1))
        at_target = -((1.0 - eps) * w_loss + w_nll)  # (N,)
        grad.scatter_add_(-1, target.unsqueeze(-1), at_target.unsqueeze(-1))
        return grad, None, None, None
