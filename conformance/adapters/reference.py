"""The `reference` result: the float64 textbook formula (ONNX SoftmaxCrossEntropyLoss, with torch's
documented smoothing and probability targets), evaluated by `conformance.reference`."""

from __future__ import annotations

from conformance.adapters import Variant
from conformance.cases import Case
from conformance.reference import TEXTBOOK, Knobs

SETUP = "import numpy as np\nfrom conformance import reference"


def version() -> dict[str, str]:
    import numpy

    return {"numpy": numpy.__version__}


def textbook(case: Case) -> str:
    return "\n".join(
        [
            "# float64; x, y/t, w are the case's arrays rounded to its dtype",
            "out = reference.evaluate(case, reference.TEXTBOOK)",
            "loss, grad = out.loss, out.grad",
        ]
    )


def documented(case: Case) -> Knobs:
    return TEXTBOOK


VARIANTS = [Variant("reference", "conformance.reference.evaluate (float64 NumPy)", textbook, documented)]


def to_numpy(value: object) -> tuple[object, str]:
    return value, "float64"
