"""Blackbox α/β model: the worked figures of ENGINE.md §9.2 and the floor semantics."""

from __future__ import annotations

from blis_sim.config.defaults_file import load_defaults
from blis_sim.latency.blackbox import BlackboxModel

ALPHA = (1601.35, 3.5125, 1805.54)
BETA = (6910.42, 17.6706, 2.8377)


def test_worked_figures_rounded_coefficients(step):
    m = BlackboxModel(ALPHA, BETA)
    assert m.step_time(step(prefills=[(0, 512)])) == 15957
    assert m.step_time(step(decodes=[100] * 32)) == 7001
    assert m.queueing_time(512) == 3399
    assert m.output_token_time() == 1805


def test_worked_figures_packaged_row(step):
    row = load_defaults().find_row("meta-llama/llama-3.1-8b-instruct", "H100", 2, "vllm/vllm-openai:v0.8.4")
    m = BlackboxModel(row.alpha_coeffs, row.beta_coeffs)
    assert m.step_time(step(prefills=[(0, 512)])) == 15957
    assert m.step_time(step(decodes=[7] * 32)) == 7001
    assert m.queueing_time(512) == 3399


def test_prefix_hits_and_context_do_not_matter(step):
    m = BlackboxModel((0, 0, 0), (100, 2, 3))
    # X counts only computed tokens (k), whatever c_before is; decodes count 1 each.
    assert m.step_time(step(prefills=[(5000, 10), (0, 20)], decodes=[1, 99999])) == 100 + 2 * 30 + 3 * 2


def test_floor_not_round(step):
    m = BlackboxModel((0.9, 0.0, 2.99), (0.5, 0.25, 0.0))
    assert m.step_time(step(prefills=[(0, 1)])) == 0  # 0.75
    assert m.queueing_time(10) == 0
    assert m.output_token_time() == 2


def test_left_to_right_float64(step):
    # (β0 + β1·X) + β2·Y in that grouping, as the spec mandates.
    b = (0.1, 0.2, 0.3)
    m = BlackboxModel((0, 0, 0), b)
    for x in range(0, 50):
        for y in range(0, 50):
            s = step(prefills=[(0, x)] if x else [], decodes=[0] * y)
            assert m.step_time(s) == int((b[0] + b[1] * x) + b[2] * y)


def test_describe_is_plain_data():
    d = BlackboxModel(ALPHA, BETA).describe()
    assert d == {"kind": "blackbox", "alpha_coeffs": list(ALPHA), "beta_coeffs": list(BETA)}
