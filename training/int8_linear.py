"""Weight-only int8 linear layers for decoding on CPU: one token per step reads every weight once, so the
bytes read decide the speed.

    from training.int8_linear import quantize_linears
    n = quantize_linears(model)        # every nn.Linear (lm_head included) -> Int8Linear, in place

Why: decoding a 135M model on 2 CPU cores is memory-bound (~0.5 GB of fp32 weights per token), and oneDNN's
bf16 matmul is slower than fp32 for a single row on some CPUs (a 2-core Xeon: 71 vs 57 ms per token). torch's
`_weight_int8pack_mm` (the kernel gpt-fast uses on CPU) multiplies bf16 activations by int8 weights with one
scale per output channel: a quarter of the fp32 bytes, ~1.5x faster per token at batch 1 and 1.4x at batch 4.
Per-channel symmetric int8 keeps each weight within 0.4% of its row's largest value; answers stay the
fine-tuned model's (the demo's evaluation measures the served path). The merged full-precision weights are
what gets quantized, once per model, at load.

Only layers whose input width is a multiple of 16 are converted: the kernel crashes the process on others
(measured with torch 2.13); the rest stay as they are.
"""
from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

ALIGN = 16  # the kernel's input width must be a multiple of this (odd widths segfault)


def available() -> bool:
    """Whether this torch has the weight-only int8 CPU kernel."""
    return hasattr(torch, "_weight_int8pack_mm")


class Int8Linear(torch.nn.Module):
    """y = x @ (q * scale).T + bias, with q int8 (out x in) and one bf16 scale per output channel."""

    def __init__(self, linear: torch.nn.Linear, act_dtype=torch.bfloat16):
        super().__init__()
        w = linear.weight.detach().float()
        scale = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
        self.register_buffer("qweight", (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(act_dtype))
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().to(act_dtype))
        self.in_features, self.out_features, self.act_dtype = linear.in_features, linear.out_features, act_dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Conversions only when needed: this runs ~200 times per generated token, where each call costs.
        flat = x.reshape(-1, self.in_features)
        if flat.dtype != self.act_dtype:
            flat = flat.to(self.act_dtype)
        y = torch._weight_int8pack_mm(flat, self.qweight, self.scale)
        if self.bias is not None:
            y += self.bias
        y = y.view(*x.shape[:-1], self.out_features)
        return y if y.dtype == x.dtype else y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weights"


def quantize_linears(model: torch.nn.Module, act_dtype=torch.bfloat16) -> int:
    """Replace every eligible nn.Linear in `model` (on CPU) by an Int8Linear; returns how many were replaced."""
    replaced = skipped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not torch.nn.Linear or child.weight.device.type != "cpu":
                continue
            if child.in_features % ALIGN:
                skipped += 1
                continue
            setattr(parent, name, Int8Linear(child, act_dtype))
            replaced += 1
    if skipped:
        log.info("int8 weights: %d linear layers kept as they are (input width not a multiple of %d)", skipped, ALIGN)
    return replaced
