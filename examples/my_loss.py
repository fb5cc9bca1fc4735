"""Two hand-written ports of torch's weighted, label-smoothed cross-entropy, to check with

    conformance run examples/port.yaml --frameworks torch,reference \
        --variant torch:mine=my_loss:cross_entropy --variant torch:slip=my_loss:cross_entropy_slip

(from the examples/ folder, or with examples/ on PYTHONPATH). `cross_entropy` is faithful;
`cross_entropy_slip` makes the classic slip: its weighted mean divides by the number of samples
instead of by the sum of the target weights.
"""

import torch


def _per_sample(logits, target, weight, label_smoothing):
    """Per position: (1 - eps) * w[y] * -log p[y] + eps / C * sum_c w_c * -log p_c (class axis 1)."""
    log_p = torch.log_softmax(logits, dim=1)
    classes = logits.shape[1]
    w = torch.ones(classes, dtype=logits.dtype) if weight is None else weight
    shape = [1, classes] + [1] * (logits.dim() - 2)
    weighted = -log_p * w.reshape(shape)
    picked = weighted.gather(1, target.unsqueeze(1)).squeeze(1)
    smooth = weighted.sum(dim=1) / classes
    return (1 - label_smoothing) * picked + label_smoothing * smooth, w[target]


def cross_entropy(logits, target, weight=None, label_smoothing=0.0, reduction="mean"):
    loss, target_weight = _per_sample(logits, target, weight, label_smoothing)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / target_weight.sum()


def cross_entropy_slip(logits, target, weight=None, label_smoothing=0.0, reduction="mean"):
    loss, _ = _per_sample(logits, target, weight, label_smoothing)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean()  # the slip: / N, not / the sum of the target weights
