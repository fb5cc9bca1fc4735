"""The hand-written comparison script the suite is measured against: one framework, no harness.

Usage: python bench/bare.py FRAMEWORK INPUT.npz OUTPUT.npz

It imports one framework (never two: `import tensorflow; import paddle` in one process segfaults), then
for every case of INPUT calls that framework's default-variant loss and its gradient exactly as the
variants in conformance/losses/softmax_ce/ do, and converts both to NumPy, as any comparison script must. It
does not import `conformance`: the arrays come ready-made in INPUT (written by bench.py from the same
case files the suite loads). It prints one JSON line: import seconds, native seconds, case count.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

Call = Callable[[np.ndarray, np.ndarray, "np.ndarray | None", float, str], tuple[np.ndarray, np.ndarray]]


def torch_call() -> Call:
    """torch.nn.CrossEntropyLoss + torch.autograd.grad (conformance.losses.softmax_ce.torch.module_api)."""
    import torch

    def call(x: np.ndarray, y: np.ndarray, w: np.ndarray | None, eps: float, reduction: str) -> tuple[np.ndarray, np.ndarray]:
        logits = torch.tensor(x).requires_grad_()
        options: dict[str, Any] = {"reduction": reduction}
        if w is not None:
            options["weight"] = torch.tensor(w)
        if eps:
            options["label_smoothing"] = eps
        loss = torch.nn.CrossEntropyLoss(**options)(logits, torch.tensor(y))
        (grad,) = torch.autograd.grad(loss.sum(), logits)
        return loss.detach().double().numpy(), grad.detach().double().numpy()

    return call


def paddle_call() -> Call:
    """paddle.nn.CrossEntropyLoss + paddle.grad (conformance.losses.softmax_ce.paddle.module_api)."""
    import paddle

    def call(x: np.ndarray, y: np.ndarray, w: np.ndarray | None, eps: float, reduction: str) -> tuple[np.ndarray, np.ndarray]:
        logits = paddle.to_tensor(x)
        logits.stop_gradient = False
        options: dict[str, Any] = {"reduction": reduction}
        if w is not None:
            options["weight"] = paddle.to_tensor(w)
        if eps:
            options["label_smoothing"] = eps
        loss = paddle.nn.CrossEntropyLoss(**options)(logits, paddle.to_tensor(y))
        (grad,) = paddle.grad(loss.sum(), logits)
        return loss.astype("float64").numpy(), grad.astype("float64").numpy()

    return call


KERAS_REDUCTIONS = {"none": "none", "mean": "sum_over_batch_size", "sum": "sum"}


def tensorflow_call() -> Call:
    """Keras (Sparse)CategoricalCrossentropy in a GradientTape, class weights as sample_weight =
    weight[label] (conformance.losses.softmax_ce.tensorflow.keras_api)."""
    import tensorflow as tf

    def call(x: np.ndarray, y: np.ndarray, w: np.ndarray | None, eps: float, reduction: str) -> tuple[np.ndarray, np.ndarray]:
        logits = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(logits)
            weights = tf.gather(tf.constant(w), y) if w is not None else None
            if eps:
                loss_fn = tf.keras.losses.CategoricalCrossentropy(
                    from_logits=True, label_smoothing=eps, reduction=KERAS_REDUCTIONS[reduction]
                )
                target = tf.one_hot(y, x.shape[1], dtype=tf.float32)
            else:
                loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=KERAS_REDUCTIONS[reduction])
                target = y
            loss = loss_fn(target, logits, sample_weight=weights) if weights is not None else loss_fn(target, logits)
            total = tf.reduce_sum(loss)
        grad = tape.gradient(total, logits)
        return np.asarray(loss.numpy(), dtype=np.float64), np.asarray(grad.numpy(), dtype=np.float64)

    return call


def jax_call() -> Call:
    """optax's cross-entropy over the class axis 1, smoothing by `optax.smooth_labels` on one-hot labels,
    class weights `w[y]` and the reduction by hand, `jax.grad` of the sum, all in one `jax.jit` function
    (conformance.losses.softmax_ce.jax.optax_api): compiled once per shape and knob setting, as a JAX user runs it."""
    import functools

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax

    @functools.partial(jax.jit, static_argnames=("eps", "reduction"))
    def loss_and_grad(x: Any, y: Any, w: Any, eps: float, reduction: str) -> Any:
        def loss_fn(logits: Any) -> Any:
            if eps:
                labels = optax.smooth_labels(jax.nn.one_hot(y, x.shape[1], dtype=logits.dtype, axis=1), eps, axis=1)
                per = optax.losses.softmax_cross_entropy(logits, labels, axis=1)
            else:
                per = optax.losses.softmax_cross_entropy_with_integer_labels(logits, y, axis=1)
            if w is not None:
                per = per * jnp.asarray(w)[y]
            return {"none": per, "sum": jnp.sum(per), "mean": jnp.mean(per)}[reduction]

        return loss_fn(x), jax.grad(lambda v: jnp.sum(loss_fn(v)))(x)

    def call(x: np.ndarray, y: np.ndarray, w: np.ndarray | None, eps: float, reduction: str) -> tuple[np.ndarray, np.ndarray]:
        loss, grad = loss_and_grad(x, y, w, eps, reduction)
        return np.asarray(loss, dtype=np.float64), np.asarray(grad, dtype=np.float64)

    return call


CALLS = {"torch": torch_call, "paddle": paddle_call, "tensorflow": tensorflow_call, "jax": jax_call}


def run(call: Call, data: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every case, one native call each; arrays are per-case views of the stacked inputs."""
    losses, grads = [], []
    for i in range(len(data["x"])):
        w = data["w"][i] if data["has_w"][i] else None
        loss, grad = call(data["x"][i], data["y"][i], w, float(data["eps"][i]), str(data["reduction"][i]))
        losses.append(loss)
        grads.append(grad)
    return losses, grads


def main(framework: str, source: str, target: str) -> None:
    started = time.perf_counter()
    call = CALLS[framework]()
    imported = time.perf_counter()
    with np.load(source) as npz:
        data = {key: npz[key] for key in npz.files}
    begin = time.perf_counter()
    losses, grads = run(call, data)
    native = time.perf_counter() - begin
    np.savez(
        target,
        loss=np.concatenate([np.ravel(v) for v in losses]) if losses else np.zeros(0),
        loss_sizes=np.array([v.size for v in losses], dtype=np.int64),
        grad=np.stack(grads) if grads else np.zeros(0),
    )
    print(json.dumps({"framework": framework, "import_seconds": imported - started, "native_seconds": native, "cases": len(losses)}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
