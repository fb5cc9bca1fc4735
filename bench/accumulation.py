"""How far float32 cross-entropy is from its float64 value as the class axis grows, per framework.

`python bench/accumulation.py FRAMEWORK [--scale S] [C ...]` (torch, paddle or tensorflow; one framework
per process) prints one JSON line per C: random logits [128, C] (standard normal times S, seed 0), random
labels, label smoothing 0.1, reduction sum, the native loss module's float32 loss and gradient against
the float64 formula (torch's documented smoothed target, written out here in NumPy). `grad_max_rel` is
the largest |a - b| / max(|a|, |b|) over the elements (huge where p - q nearly cancels);
`grad_rtol_needed` the smallest rtol that makes every element agree with atol 1e-6 (the float32
default), and `grad_per_sqrt_c` that rtol in units of 2^-23 * sqrt(C); the loss likewise. Keep S * 9
below 64 (paddle clips log-probabilities there, which this formula does not). The numbers set
`conformance.compare.ACCUMULATION` (README: Comparison; bench/README.md).
"""

from __future__ import annotations

import json
import sys

import numpy as np

N, SMOOTHING, ATOL = 128, 0.1, 1e-6


def reference(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """float64 smoothed cross-entropy, summed: q = (1-e) onehot + e/C, loss = -sum q log softmax."""
    c = x.shape[1]
    q = np.full(x.shape, SMOOTHING / c)
    q[np.arange(len(y)), y] += 1 - SMOOTHING
    shifted = x - x.max(axis=1, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    logp = shifted - lse
    return float(-(q * logp).sum()), np.exp(logp) - q


def native(framework: str, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    if framework == "torch":
        import torch

        xt = torch.tensor(x, requires_grad=True)
        loss = torch.nn.CrossEntropyLoss(reduction="sum", label_smoothing=SMOOTHING)(xt, torch.tensor(y))
        loss.backward()
        return float(loss), xt.grad.numpy()
    if framework == "paddle":
        import paddle

        xp = paddle.to_tensor(x, stop_gradient=False)
        loss = paddle.nn.CrossEntropyLoss(reduction="sum", label_smoothing=SMOOTHING)(xp, paddle.to_tensor(y))
        (grad,) = paddle.grad(loss, xp)
        return float(loss), grad.numpy()
    import tensorflow as tf

    xf = tf.constant(x)
    onehot = tf.one_hot(y, x.shape[1], dtype=tf.float32)
    loss_fn = tf.keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=SMOOTHING, reduction="sum")
    with tf.GradientTape() as tape:
        tape.watch(xf)
        loss = loss_fn(onehot, xf)
    return float(loss), tape.gradient(loss, xf).numpy()


def rtol_needed(a: np.ndarray, b: np.ndarray) -> float:
    gap = np.abs(a - b)
    scale = np.maximum(np.abs(a), np.abs(b))
    return float(np.max(np.maximum(gap - ATOL, 0.0) / np.where(scale == 0, 1.0, scale)))


def main(framework: str, sizes: list[int], scale: float) -> None:
    for c in sizes:
        rng = np.random.default_rng(0)
        x64 = rng.standard_normal((N, c)) * scale
        y = rng.integers(0, c, N)
        x32 = x64.astype(np.float32)
        loss, grad = native(framework, x32, y)
        ref_loss, ref_grad = reference(x32.astype(np.float64), y)
        grad = grad.astype(np.float64)
        larger = np.maximum(np.abs(grad), np.abs(ref_grad))
        row = {
            "framework": framework,
            "C": c,
            "scale": scale,
            "loss_rel": abs(loss - ref_loss) / abs(ref_loss),
            "grad_max_rel": float(np.max(np.abs(grad - ref_grad) / np.where(larger == 0, 1.0, larger))),
            "grad_max_abs": float(np.max(np.abs(grad - ref_grad))),
            "grad_rtol_needed": rtol_needed(grad, ref_grad),
            "loss_rtol_needed": rtol_needed(np.array([loss]), np.array([ref_loss])),
        }
        row["grad_per_sqrt_c"] = row["grad_rtol_needed"] / (2.0**-23 * c**0.5)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    scale = float(args[args.index("--scale") + 1]) if "--scale" in args else 1.0
    sizes = [int(a) for i, a in enumerate(args[1:], 1) if a != "--scale" and args[i - 1] != "--scale"]
    main(args[0], sizes or [100, 1000, 32000], scale)
