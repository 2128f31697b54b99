"""Triton kernels of the 2-bit ternary matmul (``ternarylm.w2``); imported only where Triton is.

Both kernels compute ``y[m, n] = s[m] * sum_k xq[m, k] * code[n, k]`` with ``xq`` the int8
activations (per-token absmax, as the trained forward), ``code`` the ternary weight read straight
from the packed bytes of ``ternarylm.packed.pack_codes`` (element ``4j + i`` of a row in byte ``j``,
bits ``2i .. 2i+1``, stored as code + 1) and ``s[m] = alpha / scale[m]``. The integer sum is exact
(int32), so the only rounding is the one float product of the epilogue: the pure-torch reference
(``w2.w2_matmul_reference``) gives the same bits.

Each K step loads a (BLOCK_N, BLOCK_KB) tile of packed bytes once and, for each of the 4 bit
fields, multiplies it with the activations at stride 4 (``x[:, 4j + i]``): no dense weight tile
ever exists outside registers, and each weight byte is read once per program.

* ``_gemv_kernel`` (decode, M <= GEMV_MAX_M rows): one program per BLOCK_N outputs, all M rows at
  once as a broadcast multiply and a row sum (no tensor cores: at M <= 8 the layer is bound by
  reading its weight bytes).
* ``_gemm_kernel`` (prefill, larger batches): a (BLOCK_M, BLOCK_N) output tile per program,
  ``tl.dot`` of int8 x int8 into int32 (tensor cores on sm80+).

Block sizes are fixed, not autotuned (TRITON_INTERPRET=1, the CPU tests, runs kernels as numpy and
autotuning would time every candidate there); the GPU ones were NOT tuned on a GPU (none was lent).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

GEMV_MAX_M = 8


@triton.jit
def _gemv_kernel(
    x_ptr, w_ptr, s_ptr, y_ptr, M, N, K, KB,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_KB: tl.constexpr,
):  # fmt: skip
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for kb0 in range(0, KB, BLOCK_KB):
        offs_b = kb0 + tl.arange(0, BLOCK_KB)
        wmask = (offs_n[:, None] < N) & (offs_b[None, :] < KB)
        byte = tl.load(w_ptr + offs_n[:, None] * KB + offs_b[None, :], mask=wmask, other=0).to(tl.int32)
        for i in tl.static_range(4):
            offs_k = offs_b * 4 + i
            xmask = (offs_m[:, None] < M) & (offs_k[None, :] < K)
            # masked activations are 0, so whatever code a padding or masked byte holds adds nothing
            x = tl.load(x_ptr + offs_m[:, None] * K + offs_k[None, :], mask=xmask, other=0).to(tl.int32)
            w = ((byte >> (2 * i)) & 3) - 1
            acc += tl.sum(x[:, None, :] * w[None, :, :], axis=2)
    s = tl.load(s_ptr + offs_m, mask=offs_m < M, other=0.0)
    y = acc.to(tl.float32) * s[:, None]
    ymask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    tl.store(y_ptr + offs_m[:, None] * N + offs_n[None, :], y, mask=ymask)


@triton.jit
def _gemm_kernel(
    x_ptr, w_ptr, s_ptr, y_ptr, M, N, K, KB,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_KB: tl.constexpr,
):  # fmt: skip
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for kb0 in range(0, KB, BLOCK_KB):
        offs_b = kb0 + tl.arange(0, BLOCK_KB)
        # the byte tile transposed, (BLOCK_KB, BLOCK_N): the right-hand operand of tl.dot
        wmask = (offs_b[:, None] < KB) & (offs_n[None, :] < N)
        byte = tl.load(w_ptr + offs_n[None, :] * KB + offs_b[:, None], mask=wmask, other=0).to(tl.int32)
        for i in tl.static_range(4):
            offs_k = offs_b * 4 + i
            xmask = (offs_m[:, None] < M) & (offs_k[None, :] < K)
            x = tl.load(x_ptr + offs_m[:, None] * K + offs_k[None, :], mask=xmask, other=0)
            w = (((byte >> (2 * i)) & 3) - 1).to(tl.int8)
            acc = tl.dot(x, w, acc, out_dtype=tl.int32)
    s = tl.load(s_ptr + offs_m, mask=offs_m < M, other=0.0)
    y = acc.to(tl.float32) * s[:, None]
    ymask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    tl.store(y_ptr + offs_m[:, None] * N + offs_n[None, :], y, mask=ymask)


# (BLOCK_M, BLOCK_N, BLOCK_KB) per kernel. On a GPU: a GEMV program keeps BLOCK_M x BLOCK_N x 4*BLOCK_KB
# products in registers, so its tiles stay small. The interpreter runs every program as numpy
# calls, so there the same kernels run with a few large tiles (same code, same masks).
# tl.dot of int8 needs K >= 32 per dot on NVIDIA GPUs (triton's backends/nvidia min_dot_size); the
# GEMM's K per dot is BLOCK_KB (one bit field of BLOCK_KB bytes).
GPU_BLOCKS = {"gemv": (None, 32, 32), "gemm": (32, 64, 32)}
INTERPRETER_BLOCKS = {"gemv": (None, 512, 256), "gemm": (32, 512, 256)}


def w2_matmul_triton(
    xq: torch.Tensor, packed: torch.Tensor, k: int, s: torch.Tensor, blocks: dict | None = None
) -> torch.Tensor:
    """float32 (M, N) = ``s[:, None] * (xq @ codes.T)`` for int8 ``xq`` (M, k), packed uint8 (N, ceil(k/4)).

    ``blocks`` overrides the tile sizes (tests run the GPU tiles through the interpreter too).
    """
    m, n, kb = xq.shape[0], packed.shape[0], packed.shape[1]
    xq, packed, s = xq.contiguous(), packed.contiguous(), s.contiguous().float()
    y = torch.empty(m, n, dtype=torch.float32, device=xq.device)
    if blocks is None:
        blocks = INTERPRETER_BLOCKS if xq.device.type == "cpu" else GPU_BLOCKS
    if m <= GEMV_MAX_M:
        _, bn, bkb = blocks["gemv"]
        bm = triton.next_power_of_2(m)
        _gemv_kernel[(triton.cdiv(n, bn),)](
            xq, packed, s, y, m, n, k, kb, BLOCK_M=bm, BLOCK_N=bn, BLOCK_KB=bkb
        )
    else:
        bm, bn, bkb = blocks["gemm"]
        grid = (triton.cdiv(m, bm), triton.cdiv(n, bn))
        _gemm_kernel[grid](xq, packed, s, y, m, n, k, kb, BLOCK_M=bm, BLOCK_N=bn, BLOCK_KB=bkb)
    return y
