"""`conformance import paddleapitest`: the peer's real configuration lines (tests/data/paddleapitest_lines.txt,
copied from PFCCLab/PaddleAPITest 6fc9cce) become case files the loader reads and paddle runs as written.

Expected values are float64 formulas written from paddle's documentation (cross_entropy, nll_loss,
binary_cross_entropy, kl_div, sigmoid_focal_loss) on arrays drawn as the case-key reference documents
`{shape, seed, low, high}` (NumPy's default_rng(seed + stream), uniform in [low, high); class indices
integers in [0, C)), not taken from any adapter."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conformance import cases, cli
from conformance.importers import paddleapitest as peer

DATA = Path(__file__).parent / "data" / "paddleapitest_lines.txt"
FORM_KEYS = ",".join(
    ["paddle", "paddle:axis1", "paddle:nll", "paddle:softmax_with_ce", "paddle:return_softmax", "paddle:functional"]
    + ["paddle:log_target", "paddle:label_smooth", "reference"]
)


def line_of(file: str, number: int) -> int:
    """The line of the data file that holds the peer's `file:number` (the comment above names it)."""
    lines = DATA.read_text().splitlines()
    return lines.index(f"# {file}:{number}") + 2


def case_id(file: str, number: int) -> str:
    return f"paddleapitest_lines.L{line_of(file, number)}"


# ---------------------------------------------------------------- parsing


def test_two_spellings_of_one_call_are_one_configuration():
    positional = peer.parse('paddle.nn.functional.kl_div(Tensor([5, 2],"float64"), Tensor([5, 2],"float64"), "mean", False, )')
    keywords = peer.parse('paddle.nn.functional.kl_div(input=Tensor([5, 2],"float64"), label=Tensor([5, 2],"float64"), name=None)')
    assert positional is not None and keywords is not None
    assert positional.args == keywords.args
    assert positional["input"] == peer.Tensor((5, 2), "float64")


def test_other_apis_are_not_parsed_and_unreadable_lines_say_why():
    assert peer.parse('paddle.nn.functional.relu(Tensor([1, 2],"float32"), )') is None
    for text, why in [
        ('paddle.nn.functional.nll_loss(Tensor([5, 2],"float64"), ', "not Python call syntax"),
        ('paddle.nn.functional.nll_loss(Tensor([5, 2],"float64"), bogus=1)', "has no argument 'bogus'"),
        ('paddle.nn.functional.nll_loss(Tensor([5, x],"float64"), Tensor([5],"int64"))', "cannot read Tensor"),
        ("paddle.nn.functional.label_smooth(epsilon=0.1)", "needs 'label'"),
    ]:
        with pytest.raises(peer.BadLine, match=why):
            peer.parse(text)


def test_bad_lines_are_reported_with_file_and_line_and_the_rest_is_imported(tmp_path, capsys):
    lines = tmp_path / "configs.txt"
    lines.write_text(
        'paddle.nn.functional.nll_loss(Tensor([5, 2],"float64"), \n'
        "\x00\xff garbage\n"
        'paddle.nn.functional.nll_loss(Tensor([4, 4],"float32"), Tensor([4],"int64"), )\n'
    )
    assert cli.main(["import", "paddleapitest", str(lines), "--out", str(tmp_path / "out.yaml")]) == 0
    printed = capsys.readouterr().out
    assert "configs.txt:1: not Python call syntax" in printed
    assert [c.id for c in cases.load_file(tmp_path / "out.yaml")] == ["configs.L3"]


def test_a_file_that_is_not_there_is_a_usage_error(tmp_path, capsys):
    assert cli.main(["import", "paddleapitest", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err
    assert "missing.txt is no file or folder" in err and "Traceback" not in err


# ---------------------------------------------------------------- the real lines


def test_real_lines_become_one_case_per_configuration_with_the_form_they_have():
    imported = peer.read([DATA])
    assert imported.other == 1 and not imported.bad  # the relu line; every loss line reads
    written = {w.case["id"]: w for w in imported.written}
    assert len(written) == 28  # 32 lines: relu, 3 not expressible, one repeat (5059 and 5060 differ in spelling only)
    assert all(re.fullmatch(cases.ID_PATTERN.strip("^$"), i) for i in written)
    assert written[case_id("api_config_CI_CE_Framework.txt", 5059)].also == 1
    skipped = {s.source.line: s.why for s in imported.skipped}
    assert "classes last" in skipped[line_of("api_config_CI_Coverage.txt", 25912)]  # softmax_with_cross_entropy(axis=1)
    assert "class indices" in skipped[line_of("api_config_CI_Coverage.txt", 23976)]  # soft_label=True with int64 labels
    variants = {
        ("api_config_CI_Coverage.txt", 23968): "paddle:axis1",
        ("api_config_CI_Coverage.txt", 25101): "paddle:nll",
        ("api_config_CI_CE_Framework.txt", 7084): "paddle:return_softmax",
        ("api_config_CI_py3.txt", 26131): "paddle:log_target",
        ("api_config_CI_Coverage.txt", 24450): "paddle:label_smooth",
    }
    for where, variant in variants.items():
        assert written[case_id(*where)].variant == variant
    labels_n1 = written[case_id("api_config_CI_Coverage.txt", 23958)].case
    assert labels_n1["labels"] == {"shape": [16, 1]} and labels_n1["logits"] == {"shape": [16, 10], "low": -0.6, "high": 0.6}
    amp = written[case_id("api_config_CI_py3.txt", 26127)].case
    assert amp["dtype"] == {"logits": "float32", "soft_labels": "float64"}
    assert not written[case_id("api_config_CE_PaddleNLP_gpt3.txt", 2058)].cpu_runnable  # float16


# Written here in the peer's form (this snapshot of its lists has no label_smooth call with a prior).
PRIOR = 'paddle.nn.functional.label_smooth(Tensor([4, 3],"float64"), prior_dist=Tensor([1, 3],"float64"), epsilon=0.25, )'


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The imported files (the real lines, and PRIOR) run by paddle (the forms' variants) and the
    reference: (exit code, cases by id)."""
    folder = tmp_path_factory.mktemp("peer")
    out = folder / "peer.yaml"
    (folder / "prior.txt").write_text(PRIOR + "\n")
    assert cli.main(["import", "paddleapitest", str(DATA), str(folder / "prior.txt"), "--out", str(out)]) == 0
    assert out.read_text().startswith("# Imported from PaddleAPITest")
    report = folder / "r.json"
    code = cli.main(["run", str(out), "--only", FORM_KEYS, "--json", str(report), "--html", str(folder / "r.html")])
    return code, {c["id"]: c for c in json.loads(report.read_text())["cases"]}


def test_every_expressible_line_runs_as_written(run):
    code, results = run
    imported = {w.case["id"]: w for w in peer.read([DATA]).written}
    assert results["prior.L1"]["results"]["paddle:label_smooth"]["status"] == "ok"
    statuses = {i: results[i]["results"][w.variant]["status"] for i, w in imported.items()}
    float16 = case_id("api_config_CE_PaddleNLP_gpt3.txt", 2058)
    assert statuses.pop(float16) == "error"  # no float16 kernel on paddle's CPU
    assert set(statuses.values()) == {"ok"}
    # labels [5, 5] for input [5, 2]: every framework should refuse them; paddle's nll_loss takes them (a finding)
    assert results[case_id("api_config_CI_CE_Framework.txt", 6841)]["expectation"] == "violated"
    assert code == 1


def uniform(stream: int, low: float, high: float, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(stream).uniform(low, high, size=shape)


def log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def paddle_loss(results: dict, file: str, number: int, key: str) -> float:
    return float(results[case_id(file, number)]["results"][key]["loss"])


def test_values_agree_with_float64_formulas(run):
    _, results = run
    # cross_entropy [16, 10], labels [16, 1], mean: mean(logsumexp(x) - x_y) (paddle docs, hard labels)
    x, y = uniform(0, -0.6, 0.6, (16, 10)), np.random.default_rng(1).integers(0, 10, (16, 1))[:, 0]
    expected = np.mean(-log_softmax(x.astype(np.float32).astype(np.float64), 1)[np.arange(16), y])
    assert paddle_loss(results, "api_config_CI_Coverage.txt", 23958, "paddle") == pytest.approx(expected, rel=1e-6)
    # nll_loss on log_softmax, class weights [10], mean: sum(w_y * -lp_y) / sum(w_y) (paddle docs)
    x, y, w = uniform(0, -0.6, 0.6, (10, 10)), np.random.default_rng(1).integers(0, 10, 10), uniform(2, 0.0, 1.0, (10,))
    expected = np.sum(w[y] * -log_softmax(x, 1)[np.arange(10), y]) / np.sum(w[y])
    assert paddle_loss(results, "api_config_CI_Coverage.txt", 25101, "paddle:nll") == pytest.approx(expected, rel=1e-12)
    # binary_cross_entropy [5, 2] float64, mean: -mean(t log p + (1 - t) log(1 - p))
    p, t = uniform(0, 0.0, 1.0, (5, 2)), uniform(1, 0.0, 1.0, (5, 2))
    expected = -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))
    assert paddle_loss(results, "api_config_CI_CE_Framework.txt", 4803, "paddle") == pytest.approx(expected, rel=1e-12)
    # kl_div batchmean [5, 20] float64 on log_softmax: sum(t (log t - lp)) / N, t normalised uniform draws
    x, t = uniform(0, -0.6, 0.6, (5, 20)), uniform(1, 0.0, 1.0, (5, 20))
    t = t / t.sum(axis=1, keepdims=True)
    expected = np.sum(t * (np.log(t) - log_softmax(x, 1))) / 5
    assert paddle_loss(results, "api_config_CI_py3.txt", 26129, "paddle:functional") == pytest.approx(expected, rel=1e-12)
    # sigmoid_focal_loss [5, 2] float32, normalizer 1.5, alpha 0.25, gamma 2, sum (paddle docs' formula)
    x, z = uniform(0, -0.6, 0.6, (5, 2)).astype(np.float32).astype(np.float64), np.random.default_rng(1).integers(0, 2, (5, 2))
    prob = 1 / (1 + np.exp(-x))
    bce = -(z * np.log(prob) + (1 - z) * np.log(1 - prob))
    p_t = prob * z + (1 - prob) * (1 - z)
    expected = np.sum((0.25 * z + 0.75 * (1 - z)) * (1 - p_t) ** 2 * bce) / 1.5
    assert paddle_loss(results, "api_config_CI_CE_Framework.txt", 7037, "paddle") == pytest.approx(expected, rel=1e-6)


def test_shapes_that_do_not_fit_become_check_shapes_false_cases():
    for text in [
        'paddle.nn.functional.kl_div(Tensor([5, 20],"float32"), Tensor([5, 19],"float32"), )',
        'paddle.nn.functional.sigmoid_focal_loss(Tensor([5, 2],"float32"), Tensor([5, 1],"float32"), )',
        'paddle.nn.functional.nll_loss(Tensor([5, 2],"float64"), Tensor([5, 5],"int64"), )',
    ]:
        call = peer.parse(text)
        assert call is not None
        case, _ = peer.to_case(call, peer.Source("x.txt", 1))
        assert case["check_shapes"] is False
        cases.load_text("cases:\n  - " + peer._yaml(case) + "\n", "x.yaml")  # the loader keeps them


def test_label_smooth_towards_a_prior_follows_paddles_formula_and_parts_from_uniform_smoothing(run):
    """label_smooth docs: (1 - eps) * label + eps * prior_dist; the case wraps it in cross_entropy(soft_label=True),
    mean. Its label and prior are normalised uniform draws (streams 1 and 4 of seed 0)."""
    _, results = run
    x, t = uniform(0, -0.6, 0.6, (4, 3)), uniform(1, 0.0, 1.0, (4, 3))
    prior = uniform(4, 0.0, 1.0, (1, 3))
    t, prior = t / t.sum(axis=1, keepdims=True), prior / prior.sum(axis=1, keepdims=True)
    expected = np.mean(-((0.75 * t + 0.25 * prior) * log_softmax(x, 1)).sum(axis=1))
    case = results["prior.L1"]
    assert float(case["results"]["paddle:label_smooth"]["loss"]) == pytest.approx(expected, rel=1e-12)
    assert not any({"paddle:label_smooth", "reference"} <= set(group) for group in case["groups"])  # the others smooth towards 1/3
