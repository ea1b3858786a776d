"""One optimizer update from a list of micro-batches: accumulation, AMP, DDP, clipping.

Loss normalisation: the summed token losses of the whole update (every accumulation micro-batch
on every rank) are divided by the update's total number of target tokens. DDP averages gradients
over ranks, so each rank scales its loss by world_size / global_tokens; 2 ranks x B tokens then
give the same update as 1 process x 2B tokens.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from transformer.data.batching import Batch
from transformer.runtime import autocast
from transformer.training.compiling import compile_errors
from transformer.training.distributed import all_reduce_sum
from transformer.training.loss import label_smoothed_cross_entropy


@dataclass
class StepResult:
    """This rank's sums over one update (device tensors: reading them syncs the device)."""

    loss: torch.Tensor  # () float32, summed label-smoothed loss
    nll: torch.Tensor  # () float32, summed negative log-likelihood
    n_tokens: int  # target tokens of this rank's micro-batches
    grad_norm: torch.Tensor | None  # () norm before clipping; None when not asked for
    finite: torch.Tensor  # () bool: loss and gradient norm were finite, so the step was taken


class UpdateStep:
    """Forward, backward and optimizer step over the micro-batches of one update.

    Args:
        model: the model to train, possibly wrapped in DDP and/or torch.compile.
        optimizer: its optimizer.
        scaler: a `torch.amp.GradScaler`, enabled for fp16 only.
        smoothing: label-smoothing epsilon.
        pad_id: padding id of the targets.
        device: where the model lives.
        precision: "fp32", "bf16" or "fp16" (resolved).
        clip_norm: maximum gradient norm; 0 disables clipping.
        world_size: number of DDP ranks (1 without DDP).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        *,
        smoothing: float,
        pad_id: int,
        device: torch.device,
        precision: str,
        clip_norm: float,
        world_size: int,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scaler = scaler
        self.smoothing = smoothing
        self.pad_id = pad_id
        self.device = device
        self.precision = precision
        self.clip_norm = clip_norm
        self.world_size = world_size

    def _loss_scale(self, local_tokens: int) -> float | torch.Tensor:
        # In a world of one the token count is a Python int: no device round trip at all.
        if self.world_size == 1:
            return 1.0 / local_tokens
        tokens = torch.tensor(local_tokens, dtype=torch.float32, device=self.device)
        return self.world_size / all_reduce_sum(tokens)

    def _sync_context(self, is_last: bool) -> contextlib.AbstractContextManager:
        # DDP all-reduces gradients on the last micro-batch only; under torch.compile the DDP
        # module is the compiled wrapper's `_orig_mod`.
        ddp = getattr(self.model, "_orig_mod", self.model)
        if not is_last and isinstance(ddp, DistributedDataParallel):
            return ddp.no_sync()
        return contextlib.nullcontext()

    def __call__(self, batches: list[Batch], *, want_grad_norm: bool) -> StepResult:
        """Accumulate gradients over `batches` and take one optimizer step.

        Args:
            batches: this rank's micro-batches of the update (on any device).
            want_grad_norm: compute the gradient norm even when clipping is off (for logging).
        """
        self.model.train()
        scale = self._loss_scale(sum(batch.n_tgt_tokens for batch in batches))
        loss_sum = torch.zeros((), device=self.device)
        nll_sum = torch.zeros((), device=self.device)
        for i, batch in enumerate(batches):
            batch = batch.to(self.device)
            with self._sync_context(is_last=i == len(batches) - 1), compile_errors():
                with autocast(self.device, self.precision):
                    logits = self.model(batch.src_ids, batch.tgt_in_ids)  # (B, T, V)
                sums = label_smoothed_cross_entropy(
                    logits, batch.tgt_out_ids, self.smoothing, self.pad_id
                )
                self.scaler.scale(sums.loss * scale).backward()
            loss_sum += sums.loss.detach()
            nll_sum += sums.nll.detach()
        grad_norm, finite = self._optimizer_step(loss_sum)
        return StepResult(
            loss=loss_sum,
            nll=nll_sum,
            n_tokens=sum(batch.n_tgt_tokens for batch in batches),
            grad_norm=grad_norm if want_grad_norm or self.clip_norm > 0 else None,
            finite=finite,
        )

    def _optimizer_step(self, loss_sum: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip, then step unless the loss or the gradient norm is not finite.

        Returns:
            The gradient norm before clipping and the () bool "finite" (the step was taken).
        """
        self.scaler.unscale_(self.optimizer)  # clip, check and report the true gradient
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        if self.clip_norm > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, self.clip_norm)
        else:
            grad_norm = torch.nn.utils.get_total_norm(
                [p.grad for p in params if p.grad is not None]
            )
        if self.scaler.is_enabled():
            # fp16: the scaler skips steps with inf/NaN gradients itself (and lowers its scale),
            # which is routine; only a non-finite loss counts as divergence.
            finite = torch.isfinite(loss_sum)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            finite = torch.isfinite(loss_sum) & torch.isfinite(grad_norm)
            self._step_if(finite)
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm, finite

    def _step_if(self, finite: torch.Tensor) -> None:
        if self.optimizer.defaults.get("fused"):
            # The fused kernel skips the whole step (moments and step count too) where
            # `found_inf` is 1, on the device: no host sync per update (what GradScaler uses).
            self.optimizer.grad_scale = None
            self.optimizer.found_inf = (~finite).float()
            try:
                self.optimizer.step()
            finally:
                del self.optimizer.grad_scale, self.optimizer.found_inf
        elif finite.item():  # a host sync; free on the CPU (fused is used on CUDA)
            self.optimizer.step()
