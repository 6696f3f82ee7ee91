"""Fused multiply-adds for the generators' compiled CPU loops, rounded as torch's CPU kernels do.

numba without fastmath fuses no multiply-add, while torch's vectorised CPU kernels call one in
`addcmul` and `lerp` (the same on its AVX2 and AVX-512 code paths). Loops that must give the
tensor code's bytes call these where it does: LLVM's fma, the CPU's instruction or a correctly
rounded libm call.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


def _fma_intrinsic(nbtype, irtype):  # type: ignore[no-untyped-def]
    def fma(typingctx, a, b, c):  # type: ignore[no-untyped-def]
        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            fn = builder.module.declare_intrinsic("llvm.fma", [irtype], ir.FunctionType(irtype, [irtype] * 3))
            return builder.call(fn, args)

        return nbtype(nbtype, nbtype, nbtype), codegen

    return intrinsic(fma)


#: a·b + c rounded once, in float64 and float32.
fma64 = _fma_intrinsic(types.float64, ir.DoubleType())
fma32 = _fma_intrinsic(types.float32, ir.FloatType())


@njit(cache=True, nogil=True, inline="always")
def lerp32(start: np.float32, end: np.float32, weight: np.float32) -> np.float32:
    """torch.lerp of float32 as its vectorised CPU kernel rounds it: start + w·(end − start)
    for |w| < 0.5, else end + (w − 1)·(end − start), each with one rounding of the product-sum."""
    small = abs(weight) < np.float32(0.5)  # selects, not branches: the weights are random
    coeff = weight if small else weight - np.float32(1.0)
    base = start if small else end
    return fma32(coeff, end - start, base)
