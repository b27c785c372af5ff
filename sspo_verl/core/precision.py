"""The one dtype rule of SSPO's arithmetic: float32 at least, whatever dtype the engine hands over (spec §4, [ours]).

    compute_dtype(x, y, ...) = promote(float32, dtype(x), dtype(y), ...)
        bf16 / fp16 / fp32 inputs -> float32;  any float64 input -> float64

Log-ratio, segment sums and means, entropy scale, clip bounds, loss matrix and metric sums are all computed in
this dtype: a bf16 engine's log-probs are upcast once (exactly: every bf16 value is a float32 value), never
the float32 old log-probs or advantages cast down. The gradient reaches a bf16 ``log_prob`` through the
upcast's backward, i.e. rounded to bf16 once, at the end.
"""

from __future__ import annotations

from typing import Optional

import torch


def compute_dtype(*tensors: Optional[torch.Tensor]) -> torch.dtype:
    """float32, or float64 when any floating-point input is float64 (``None`` and integer inputs are ignored)."""
    dtype = torch.float32
    for x in tensors:
        if x is not None and x.is_floating_point():
            dtype = torch.promote_types(dtype, x.dtype)
    return dtype
