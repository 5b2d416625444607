"""One hand-fused training step for plain Linear/ReLU stacks under SGD and cross-entropy.

On a CPU an mnist_mlp step is a dozen GEMMs plus ~60 small ops: autograd's graph, fresh
gradient tensors and a separate optimizer pass over all 575k weights cost about a fifth of
the epoch. This step computes the same SGD update without them: each layer's weight
gradient GEMM writes straight into its momentum buffer (``addmm_`` with beta = momentum),
and one foreach op then moves every parameter. It is used only where it computes what
``optimizer.step(closure)`` would (same loss, same update, same optimizer state), and the
momentum buffers stay in ``optimizer.state``, so checkpoints and resume are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class MlpSgdStep:
    """``step(xb, yb) -> loss``: forward, backward and the SGD update of one batch."""

    flatten: bool
    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    # Per parameter: where its gradient (plus momentum and weight decay) accumulates.
    weight_buffers: list[torch.Tensor]
    bias_buffers: list[torch.Tensor]
    group: dict
    # Room for the longest batch: ones to sum bias gradients, minus ones for the one-hot.
    ones: torch.Tensor
    minus_ones: torch.Tensor

    @torch.no_grad()
    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        batch = xb.shape[0]
        activations = [xb.reshape(batch, -1) if self.flatten else xb]
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            hidden = torch.addmm(bias, activations[-1], weight.t())
            activations.append(hidden.relu_() if i < last else hidden)
        log_probs = torch.log_softmax(activations[-1], dim=1)
        loss = F.nll_loss(log_probs, yb)
        # d(mean cross-entropy)/d(logits) = (softmax - one_hot) / batch
        grad = log_probs.exp_()
        grad.scatter_add_(1, yb.unsqueeze(1), self.minus_ones[:batch])
        grad.div_(batch)
        momentum = self.group["momentum"]
        ones = self.ones[:batch]
        for i in range(last, -1, -1):
            # buffer = momentum * buffer + gradient; with momentum 0 the old contents are
            # ignored (BLAS beta = 0), which is SGD's plain gradient.
            self.weight_buffers[i].addmm_(grad.t(), activations[i], beta=momentum)
            self.bias_buffers[i].addmv_(grad.t(), ones, beta=momentum)
            if i > 0:
                # ReLU's backward, as autograd does it: zero where the output was zero.
                grad = torch.ops.aten.threshold_backward(grad @ self.weights[i], activations[i], 0)
        parameters = [*self.weights, *self.biases]
        buffers = [*self.weight_buffers, *self.bias_buffers]
        if self.group["weight_decay"]:
            torch._foreach_add_(buffers, parameters, alpha=self.group["weight_decay"])
        torch._foreach_add_(parameters, buffers, alpha=-self.group["lr"])
        return loss


def mlp_sgd_step(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    grad_clip_norm: float | None,
    inputs: torch.Tensor,
    batch_size: int,
) -> MlpSgdStep | None:
    """The fused step for this network, optimizer and loss, or None where it would differ.

    It covers ``[Flatten] Linear (ReLU Linear)*`` with biases, trained on the CPU by plain
    or heavy-ball SGD (any momentum and weight decay; no dampening, Nesterov or maximize)
    against unweighted mean cross-entropy, without gradient clipping. ``inputs`` are the
    training inputs, batched by ``batch_size``. Anything else (dropout, batch norm,
    convolutions, other optimizers or losses, a GPU) keeps the autograd path.
    """
    layers = list(module.children()) if type(module) is nn.Sequential else []
    flatten = bool(layers) and type(layers[0]) is nn.Flatten
    if flatten and (layers[0].start_dim, layers[0].end_dim) != (1, -1):
        return None
    stack = layers[1:] if flatten else layers
    linears = stack[0::2]
    activations = stack[1::2]
    if (
        not linears
        or len(linears) != len(activations) + 1
        or any(type(layer) is not nn.Linear or layer.bias is None for layer in linears)
        or any(type(layer) is not nn.ReLU for layer in activations)
    ):
        return None
    if (
        type(optimizer) is not torch.optim.SGD
        or len(optimizer.param_groups) != 1
        or grad_clip_norm is not None
    ):
        return None
    group = optimizer.param_groups[0]
    if any(group.get(key) for key in ("nesterov", "dampening", "maximize", "differentiable")):
        return None
    if (
        type(loss_fn) is not nn.CrossEntropyLoss
        or loss_fn.weight is not None
        or loss_fn.reduction != "mean"
        or loss_fn.label_smoothing != 0.0
    ):
        return None
    weights = [layer.weight for layer in linears]
    biases = [layer.bias for layer in linears]
    parameters = [*weights, *biases]
    if {id(p) for p in group["params"]} != {id(p) for p in parameters} or len(
        group["params"]
    ) != len(parameters):
        return None
    if any(p.device.type != "cpu" or p.dtype != inputs.dtype for p in parameters):
        return None
    if not all(p.requires_grad and p.is_contiguous() for p in parameters):
        return None
    if not flatten and inputs.dim() != 2:
        return None
    return MlpSgdStep(
        flatten=flatten,
        weights=weights,
        biases=biases,
        weight_buffers=[_buffer(optimizer, p, group) for p in weights],
        bias_buffers=[_buffer(optimizer, p, group) for p in biases],
        group=group,
        ones=torch.ones(batch_size, dtype=inputs.dtype),
        minus_ones=torch.full((batch_size, 1), -1.0, dtype=inputs.dtype),
    )


def _buffer(optimizer: torch.optim.Optimizer, parameter: torch.Tensor, group: dict) -> torch.Tensor:
    """SGD's momentum buffer for ``parameter`` (made as zeros: its first step is then the
    gradient, as SGD's is), or scratch room for the gradient when there is no momentum."""
    if not group["momentum"]:
        return torch.zeros_like(parameter)
    state = optimizer.state[parameter]
    buffer = state.get("momentum_buffer")
    if buffer is None or not buffer.is_contiguous():
        buffer = torch.zeros_like(parameter) if buffer is None else buffer.contiguous()
        state["momentum_buffer"] = buffer
    return buffer
