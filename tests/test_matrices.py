"""Which matrix key a user's function's difference moves with (`conformance.matrices`), on case records
written here in their results.json form: the kinds are set by construction, so the key is known."""

from __future__ import annotations

from conformance import matrices


def record(case_id: str, params: dict, kinds: dict[str, dict | None], statuses: dict[str, str] | None = None) -> dict:
    """A case record with torch and the user's functions `kinds` (b -> its fit against torch, None: it agrees)."""
    statuses = statuses or {}
    results = {"torch": {"status": "ok"}, **{b: {"status": statuses.get(b, "ok")} for b in kinds}}
    apart = [b for b, fit in kinds.items() if fit is not None]
    groups = [["torch", *[b for b in kinds if b not in apart and statuses.get(b, "ok") == "ok"]], *[[b] for b in apart]]
    explanation = [{"a": "torch", "b": b, "fit": fit} for b, fit in kinds.items() if fit is not None]
    return {"file": "m.yaml", "id": case_id, "params": params, "results": results, "groups": groups, "explanation": explanation}


FACTOR_C = {"exact": False, "residual": {"factor": 1 / 3, "factor_counts": ["C (the number of classes)"], "denominator_counts": ["N*C"]}}
SHAPE = {"exact": False, "residual": {"shape": [2, 3], "reduced": {"axis": 1, "how": "summed"}}}
SHIFT = {"exact": False, "residual": {"shift": {"axis": 0, "by": 1, "ignored": -100}}}


def test_matrix_keys_are_read_from_the_label_whatever_the_values_hold():
    assert matrices.matrix_keys("w[reduction=mean,weight=[1,2,3]]") == ("w", ["reduction", "weight"])
    assert matrices.matrix_keys("plain") == ("plain", [])


def test_a_difference_that_is_a_function_of_one_key_moves_with_it():
    """kornia's focal loss: another shape under none, a mean over N*C under mean, the same under sum, with
    or without weights; a shift the same everywhere; a function unsupported on weighted cases left out there."""
    by_reduction = {"none": SHAPE, "mean": FACTOR_C, "sum": None}
    found = matrices.Movements()
    for reduction, fit in by_reduction.items():
        for weight in (None, [1, 2, 3]):
            label = f"reduction={reduction},weight={'null' if weight is None else '[1,2,3]'}"
            found.add(
                record(
                    f"c[{label}]",
                    {"reduction": reduction, "weight": weight},
                    {"torch:focal": fit, "torch:next": SHIFT},
                    {"torch:next": "unsupported" if weight else "ok"},
                )
            )
    moved = {m["b"]: m for m in found.found()}
    assert moved["torch:focal"]["moves_with"] == ["reduction"]
    assert moved["torch:focal"]["by_value"] == {
        "none": "values of another shape (summed)",
        "mean": "its mean divides by N*C",
        "sum": "agrees",
    }
    assert (
        moved["torch:next"]["text"] == "torch:next vs torch: the same in every case of the matrix: labels shifted by 1 along label axis 0"
    )


def test_a_difference_of_two_keys_together_moves_with_no_single_key():
    found = matrices.Movements()
    for reduction in ("mean", "sum"):
        for weight in (None, [1, 2]):
            fit = FACTOR_C if (reduction == "mean") != (weight is None) else None
            label = f"reduction={reduction},weight={'null' if weight is None else '[1,2]'}"
            found.add(record(f"c[{label}]", {"reduction": reduction, "weight": weight}, {"torch:port": fit}))
    (moved,) = found.found()
    assert moved["moves_with"] == [] and "no single key of the matrix (reduction, weight together)" in moved["text"]
