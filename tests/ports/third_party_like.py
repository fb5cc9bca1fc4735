"""Test-local torch functions that compute what three real third-party losses compute on the cases the
suite hands them (their source read in the pinned versions), written for today's `--variant
KEY=MODULE:FUNCTION` form, which fills no argument the suite does not know (`vocab_size`,
`num_items_in_batch`, a required `alpha`): tests run them as user variants (tests/test_explain.py).

- `focal_over_map`: kornia 0.9.0 `kornia.losses.focal_loss(pred, target, alpha=None, gamma=0.0, ...)`: a
  (N, C, d1, ...) map holding -log p[y] on the target class and 0 elsewhere (also at ignored positions),
  times `weight[c]`; 'none' returns the map, 'sum' its sum, 'mean' its sum over every element of the map,
  N*C*d1*..., ignored positions included: torch's unweighted mean divided by C.
- `next_token`: transformers 5.23.0 `loss.loss_utils.ForCausalLMLoss(logits, labels, vocab_size)`, the
  classes moved last as a language model has them: labels padded with the ignore index and shifted by one
  along the last axis (position t scored against the label of t+1, the last position ignored), then
  `fixed_cross_entropy`: torch's mean over the non-ignored positions.
- `sum_over_items`: transformers 5.23.0 `fixed_cross_entropy(source, target, num_items_in_batch)` given the
  number of non-ignored labels, as the Trainer passes it for one batch: torch's sum divided by that count;
  `reduction` is swallowed by its **kwargs, so it returns that one number whatever the case asks.
"""

import torch
import torch.nn.functional as F


def _ignore(ignore_index):
    return -100 if ignore_index is None else ignore_index


def focal_over_map(logits, target, weight=None, ignore_index=None, reduction="mean"):
    log_p = torch.log_softmax(logits, dim=1)
    valid = target != _ignore(ignore_index)
    hot = F.one_hot(torch.where(valid, target, torch.zeros_like(target)), logits.shape[1]).movedim(-1, 1).to(logits.dtype)
    loss = -log_p * hot * valid.unsqueeze(1)
    if weight is not None:
        loss = loss * weight.reshape([-1] + [1] * (logits.dim() - 2))
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / loss.numel()


def next_token(logits, labels, ignore_index=None):
    ignore = _ignore(ignore_index)
    last = logits.movedim(1, -1)
    shifted = F.pad(labels, (0, 1), value=ignore)[..., 1:]
    return F.cross_entropy(last.reshape(-1, last.shape[-1]), shifted.reshape(-1), ignore_index=ignore)


def sum_over_items(logits, labels, ignore_index=None, reduction="mean"):
    ignore = _ignore(ignore_index)
    return F.cross_entropy(logits, labels, ignore_index=ignore, reduction="sum") / (labels != ignore).sum()
