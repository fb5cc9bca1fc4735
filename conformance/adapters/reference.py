"""The `reference` result: the float64 textbook formula of each loss family (softmax: ONNX
SoftmaxCrossEntropyLoss, with torch's documented smoothing and probability targets), evaluated by
`conformance.reference`. It computes every registered family."""

from __future__ import annotations

import json

from conformance import registry
from conformance.adapters import Variant
from conformance.cases import MAX_ELEMENTS, Case
from conformance.reference import Knobs
from conformance.reference import textbook as textbook_knobs

ORDER = 1000  # last in tables
REFERENCE = True  # the float64 oracle every difference is measured against
SETUP = "import numpy as np\nfrom conformance import cases, reference"


def version() -> dict[str, str]:
    import numpy

    return {"numpy": numpy.__version__}


def textbook(case: Case) -> str:
    """Rebuilds the case from its parameters (JSON is YAML), so the snippet runs on its own."""
    document = json.dumps({"cases": [case.params]})
    size = max([case.predictions.size, case.targets.size] if case.targets is not None else [case.predictions.size])
    limit = [f"cases.MAX_ELEMENTS = max(cases.MAX_ELEMENTS, {size})  # the case's size (--max-elements)"] if size > MAX_ELEMENTS else []
    return "\n".join(
        [
            *limit,
            f"case, = cases.load_text({document!r}, 'case.yaml')",
            "out = reference.evaluate(case, reference.textbook(case))  # float64, on the inputs rounded to the case dtype",
            "loss, grad = out.loss, out.grad",
        ]
    )


def documented(case: Case) -> Knobs:
    return textbook_knobs(case)


VARIANTS = [
    Variant("reference", "conformance.reference.evaluate (float64 NumPy)", textbook, documented, (loss,)) for loss in registry.losses()
]


def to_numpy(value: object) -> tuple[object, str]:
    return value, "float64"
