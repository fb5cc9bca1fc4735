"""`conformance.console` in a CI log: no terminal, 80 columns. Case ids are never broken across lines
(they are searched for and copied from logs) and numbers are written at their dtype's precision."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console

from conformance import console, digits

SHORT_ID = "cases/seed.yaml::plain[reduction=none]"
LONG_ID = "cases/sweep_soft_labels.yaml::soft_labels_weighted[reduction=mean,label_smoothing=0.25,dtype=float32]"
F64_ID = "cases/float64.yaml::plain[reduction=sum]"
# float32 losses as results.json holds them (float64 readings of float32 values): np.float32(1.0553335)
# and np.float32(1.0722452) are 1.0553334951400757 and 1.0722452402114868 (`float(np.float32(...))`);
# the first is torch's weighted smoothed mean in the README, the second paddle's.
TORCH_F32 = 1.0553334951400757
PADDLE_F32 = 1.0722452402114868


def ci_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=80, force_terminal=False, color_system=None), out


def record(nodeid: str, dtype: str, expectation: str = "met", message: str | None = None) -> dict:
    file, case_id = nodeid.split("::")
    results = {key: {"status": "ok", "dtype": dtype} for key in ("torch", "paddle", "paddle:smooth_recipe")}
    return {"file": file, "id": case_id, "results": results, "expectation": expectation, "expectation_message": message}


def document(cases: list[dict], baseline: dict | None = None) -> dict:
    summary = {
        "cases": len(cases),
        "agree": 0,
        "diverge": len(cases),
        "expectations": {"met": 0, "violated": len(cases), "none": 0},
        "off_documented_formula": 0,
        "statuses": {"ok": 3 * len(cases)},
    }
    doc = {"summary": summary, "versions": {"torch": "2.13.0+cpu"}, "cases": cases}
    if baseline is not None:
        doc["baseline"] = baseline
    return doc


def moved(nodeid: str, key: str, old: object, new: object) -> dict:
    return {"case": nodeid, "key": key, "what": "loss", "old": old, "new": new, "max_abs": 0.1, "max_rel": 0.1}


def test_changed_values_keep_each_case_id_on_one_line_at_80_columns():
    """Protects greppable CI logs: every moved value's line holds its case id whole (the table used to
    fold `cases/seed.yaml::p` / `lain[reduction=non` / `e]`), even an id longer than the line."""
    report = {
        "file": "cases/baselines/old.json",
        "old_versions": {"torch": "2.12.0+cpu"},
        "new_versions": {"torch": "2.13.0+cpu"},
        "compared": 6,
        "within_tolerance": 0,
        "moved": [moved(SHORT_ID, "torch", PADDLE_F32, TORCH_F32), moved(LONG_ID, "paddle:smooth_recipe", TORCH_F32, PADDLE_F32)],
        "status_changes": [{"case": F64_ID, "key": "tensorflow:v1", "what": "status", "old": "ok", "new": "error"}],
    }
    out_console, out = ci_console()
    console.print_summary(document([record(SHORT_ID, "float32"), record(LONG_ID, "float32")], report), out_console, [])
    lines = out.getvalue().splitlines()
    for nodeid, rest in [
        (SHORT_ID, "torch loss: 1.0722452 -> 1.0553335"),
        (LONG_ID, "paddle:smooth_recipe loss: 1.0553335 -> 1.0722452"),
        (F64_ID, "tensorflow:v1 status: ok -> error"),
    ]:
        assert f"  {nodeid} {rest}" in lines, out.getvalue()
    assert "1.0553334951400757" not in out.getvalue()


def test_a_moved_value_is_written_at_the_dtype_its_row_names_without_the_case_record():
    """Protects numbers whose case record is not at hand (the summary keeps only violated cases): a row
    that names its result's dtype is written at it."""
    report = {
        "file": "cases/baselines/old.json",
        "old_versions": {"torch": "2.12.0+cpu"},
        "new_versions": {"torch": "2.13.0+cpu"},
        "compared": 1,
        "within_tolerance": 0,
        "moved": [{**moved(SHORT_ID, "torch", PADDLE_F32, TORCH_F32), "dtype": "float32"}],
        "status_changes": [],
    }
    out_console, out = ci_console()
    console.print_baseline(report, out_console)
    assert f"  {SHORT_ID} torch loss: 1.0722452 -> 1.0553335" in out.getvalue().splitlines()


def test_violated_expectations_keep_each_case_id_on_one_line_at_80_columns():
    """Protects the VIOLATED lines in a CI log: the id (and the message after it) on one line, however long."""
    message = "expected groups [[torch, paddle, tensorflow]], found [[torch, paddle], [tensorflow]]"
    out_console, out = ci_console()
    cases = [record(SHORT_ID, "float32", "violated", message), record(LONG_ID, "float32", "violated", message)]
    console.print_summary(document(cases), out_console, ["reports/results.json"])
    lines = out.getvalue().splitlines()
    assert f"VIOLATED {SHORT_ID}: {message}" in lines
    assert f"VIOLATED {LONG_ID}: {message}" in lines


@pytest.mark.parametrize(
    "value, dtype, text",
    [
        (TORCH_F32, "float32", "1.0553335"),  # float(np.float32(1.0553335)), see above
        (0.10000000149011612, "float32", "0.1"),  # the float32 nearest 0.1 is 13421773 * 2**-27
        (16777217.0, "float32", "1.6777216e+07"),  # 2**24 + 1 is not a float32: it rounds to 2**24
        (0.30000000000000004, "float64", "0.30000000000000004"),  # 0.1 + 0.2 in float64: 17 digits are its shortest
        (0.1, None, "0.1"),  # dtype unknown: float64
        (0.0999755859375, "float16", "0.1"),  # the float16 nearest 0.1 is 1638 * 2**-14
        (0.10009765625, "bfloat16", "0.1"),  # the bfloat16 nearest 0.1 is 205 * 2**-11 (8 significant bits)
        (1.0078125, "bfloat16", "1.01"),  # 1 + 2**-7, the next bfloat16 after 1; "1.0" would be 1
        (math.nan, "float32", "nan"),
        (-math.inf, "bfloat16", "-inf"),
        ([[TORCH_F32, 0.5], [-2.0, 0.0]], "float32", "[[1.0553335, 0.5], [-2.0, 0.0]]"),
        ("error", "float32", "error"),
    ],
)
def test_numbers_are_written_at_their_dtypes_shortest_round_trip_digits(value, dtype, text):
    """Protects `number`: the fewest digits that read back as the same value of the dtype (float32 at
    most 9 significant digits, float64 its shortest repr); expected texts worked out by hand from the
    formats' significand widths (float32 24 bits, float16 11, bfloat16 8)."""
    assert digits.number(value, dtype) == text
