"""A numpy-only fake framework for the tests of the runner and the xdist service: it dies, hangs,
raises, prints, sleeps or spins on chosen case ids (in a case or only in a recipe), which no real framework can
be made to do on purpose. Like paddle, it warns on stderr when imported, so a crash message can be
checked for showing what the worker printed on the case, not at import."""

from __future__ import annotations

import os
import uuid

from conformance import cases, registry

FAKE_ADAPTER = '''
"""A fake framework for the runner tests: numpy only; dies, hangs, raises or prints on chosen case ids."""
import os
import sys
import threading

from conformance.adapters import Unsupported, Variant

print("fake: an import-time warning (paddle warns 'No ccache found' here)", file=sys.stderr)

SETUP = "import os\\nimport time\\nimport numpy as np"
BODIES = {
    "exit": "os._exit(3)",
    "kill": "os.kill(os.getpid(), 9)",
    "hang": "time.sleep(120)",
    "raise": "raise ValueError('bad input')",
    "long_error": "raise ValueError('\\\\n'.join(f'line {i}' for i in range(20)))",
    "noisy": "print('noise on sys.stdout')\\nos.write(1, b'noise on fd 1\\\\n')\\nloss = np.float64(x.sum())",
    "say_and_kill": "os.write(2, b'last words of say_and_kill\\\\n')\\nos.kill(os.getpid(), 9)",
}


def version():
    """Called in the worker only: it may fail there, or arrange for the worker to die on its own a while
    after it is ready (`FAKE_DIES_AFTER_SECONDS`), whatever it is doing."""
    if {broken}:
        raise RuntimeError("fake framework failed to initialise")
    if os.environ.get("FAKE_DIES_AFTER_SECONDS"):
        threading.Timer(float(os.environ["FAKE_DIES_AFTER_SECONDS"]), os.kill, (os.getpid(), 9)).start()
    return {"fake": "0"}


def to_numpy(value):
    import numpy as np

    return np.asarray(value, dtype=np.float64), "float64"


def build(case):
    if case.id == "unsupported":
        raise Unsupported("fake has no way to express this case")
    if case.id.startswith("slow"):
        return "time.sleep(0.02)\\nloss = np.float64(x.sum())"
    if case.id.startswith(("spin", "nap")):  # spin_700: 0.7 s of CPU time; nap_700: 0.7 s asleep (no CPU time)
        seconds = int(case.id.split("_")[1]) / 1000
        if case.id.startswith("nap"):
            return f"time.sleep({seconds})\\nloss = np.float64(x.sum())"
        return f"start = time.process_time()\\nwhile time.process_time() - start < {seconds}:\\n    pass\\nloss = np.float64(x.sum())"
    return BODIES.get(case.id, "loss = np.float64(x.sum())\\ngrad = np.ones_like(x)")


def recipe(case, knobs):
    """Any target's recipe is the plain loss; the case `kill_in_recipe` dies only here."""
    return BODIES["kill"] if case.id == "kill_in_recipe" else "loss = np.float64(x.sum())"


VARIANTS = [Variant("{name}", "fake.cross_entropy", build, lambda case: None)]
'''


def register_fake(tmp_path, monkeypatch, broken: bool = False) -> str:
    """Register a numpy-only framework the way a plug-in package does: a distribution on the path
    (here PYTHONPATH, so workers, fresh interpreters, find it too) declaring an entry point in the group
    `conformance.frameworks`."""
    name = f"fake_{uuid.uuid4().hex[:8]}"
    module = f"{name}_adapter"
    source = FAKE_ADAPTER.replace("{name}", name).replace("{broken}", str(broken))
    (tmp_path / f"{module}.py").write_text(source, encoding="utf-8")
    info = tmp_path / f"{name}-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[{registry.FRAMEWORKS_GROUP}]\n{name} = {module}\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    inherited = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path)] + ([inherited] if inherited else [])))
    registry.refresh()
    return name


def fake_cases(*ids: str) -> list:
    text = "cases:\n" + "".join(f"  - id: {i}\n    logits: [[{n}, 2, 3]]\n    labels: [0]\n" for n, i in enumerate(ids))
    return cases.load_text(text, "fake.yaml")
