"""A port's standing expectation: a user's variant given with `against: KEY` must join KEY's group.

Wherever KEY ran (status ok), a case where the variant lands in another group, errors or crashes
violates the case's expectation (the pytest item fails, `conformance run` exits 1), with the one-line
explanation of the pair (the explanation's first line; without one, the largest difference or the
error) in the expectation's message, which the console and pytest's failure table print. A case whose
own expectation names the variant (its groups, statuses or printed values) is left to that expectation:
the author has said what the variant does there. An `unsupported` variant ran nothing (the object does
not take a key the case sets, and the message names it), so it violates nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from conformance import user
from conformance.cases import ANY_RESULT, Expectation
from conformance.records import Comparison, Explanation, Result

FAILING = ("error", "crashed")


def check(
    expect: Expectation | None, results: Mapping[str, Result], comparison: Comparison, explanation: tuple[Explanation, ...]
) -> Comparison:
    """`comparison` with each active `against:` that does not hold added to its expectation verdict."""
    problems = [
        problem
        for variant, key in sorted(user.against().items())
        if variant not in named(expect) and (problem := _problem(variant, key, results, comparison, explanation))
    ]
    if not problems:
        return comparison
    before = [comparison.expectation_message or ""] if comparison.expectation == "violated" else []
    message = "; ".join(before + problems)
    return replace(comparison, expectation="violated", expectation_message=message)


def named(expect: Expectation | None) -> set[str]:
    """The result keys an expectation names ('*' stands for none in particular)."""
    if expect is None:
        return set()
    statuses = set(expect.status or {}) - {ANY_RESULT}
    return {k for g in expect.groups or [] for k in g} | statuses | set(expect.values or {})


def _problem(variant: str, key: str, results: Mapping[str, Result], comparison: Comparison, explanation: tuple[Explanation, ...]) -> str:
    """What is wrong with `variant` against `key` on this case, in one line ("" where nothing is)."""
    mine, theirs = results.get(variant), results.get(key)
    if mine is None or theirs is None or not theirs.ok or mine.status == "unsupported":
        return ""
    head = f"{variant} (against: {key})"
    if mine.status in FAILING:
        return f"{head} is {mine.status}: {(mine.message or '').splitlines()[0][:200] if mine.message else 'no message'}"
    if any(variant in group and key in group for group in comparison.groups):
        return ""
    return f"{head} is apart from {key}: {one_line(variant, key, comparison, explanation)}"


def one_line(variant: str, key: str, comparison: Comparison, explanation: tuple[Explanation, ...]) -> str:
    """The first line of the pair's explanation, or, where there is none (KEY is no framework's default
    variant, which the explanations are made against), the pair's largest differences."""
    entry = next((e for e in explanation if {e.a, e.b} == {variant, key}), None)
    if entry is not None and entry.text:
        return entry.text.splitlines()[0]
    pair = next((p for p in comparison.pairs if {p.a, p.b} == {variant, key}), None)
    if pair is None:
        return "no comparison of the two"
    grad = f", gradient {pair.grad_max_abs:.3g} abs" if pair.grad_max_abs is not None else ""
    reason = f" ({pair.reason})" if pair.reason else ""
    return f"loss differs by {pair.loss_max_abs:.3g} abs, {pair.loss_max_rel:.3g} rel{grad}{reason}"
