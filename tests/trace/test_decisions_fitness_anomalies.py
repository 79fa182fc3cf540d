"""Decision traces with counterfactual regret (§12.1), fitness (§12.2), anomaly counters (§12.3), and their stdout
sections (§14.1), through the Python API and the CLI."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blis_sim import api
from blis_sim.config import SimulationConfig
from blis_sim.engine.snapshot import Snapshot
from blis_sim.errors import InputError
from blis_sim.metrics.anomalies import count_inversions, priority_inversions
from blis_sim.metrics.fitness import FITNESS_KEYS, components, evaluate, fitness_text, parse_weights
from blis_sim.metrics.histogram import IntHistogram
from blis_sim.trace.decisions import DecisionTrace, summary_text

MODEL = {"model": "meta-llama/llama-3.1-8b-instruct"}


def _cfg(**sections):
    return SimulationConfig.model_validate({"latency": MODEL, **sections})


# ------------------------------------------------------------------------------------------ priority inversions
def _brute(e2es):
    return sum(1 for i in range(len(e2es)) for j in range(i + 1, len(e2es)) if e2es[i] > 2 * e2es[j])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 60), max_size=60))
def test_inversions_equal_the_pairwise_count(e2es):
    assert count_inversions(e2es) == _brute(e2es)


def test_inversions_by_hand_and_grouping():
    assert count_inversions([10, 4, 5, 21, 10]) == 2  # (10, 4) and (21, 10); 10 > 2*5 fails
    rows = [  # (instance, slo, arrival, index, e2e): groups never mix
        (0, "", 0, 0, 100), (0, "", 5, 1, 10),  # one inversion
        (0, "batch", 1, 2, 100), (1, "", 2, 3, 10),  # alone in their groups
        (0, "default", 9, 4, 1),  # the empty class is "default": same group as the first two
    ]
    assert priority_inversions(rows) == 1 + 2
    # arrival order, ties by index: the later-indexed request counts as later
    assert priority_inversions([(0, "", 7, 1, 10), (0, "", 7, 0, 100)]) == 1


# ------------------------------------------------------------------------------------------ fitness
def test_fitness_components_by_hand():
    ttft, e2e = IntHistogram(), IntHistogram()
    for v in (1000, 3000):
        ttft.add(v)
    for v in (10_000, 20_000, 30_000):
        e2e.add(v)
    comps = components(ttft, e2e, rps=25.0, tps=5000.0)
    assert comps["throughput"] == 25 / 125
    assert comps["tokens_per_sec"] == 5000 / 15000
    assert comps["mean_ttft"] == 1 / (1 + 2000 / 1000)
    assert comps["p50_ttft"] == 1 / (1 + 2000 / 1000)
    assert comps["p99_ttft"] == pytest.approx(1 / (1 + 2980 / 1000))  # rank 0.99: 1000 + 2000 * 0.99
    assert comps["p50_e2e"] == 1 / (1 + 20)
    assert comps["p99_e2e"] == pytest.approx(1 / (1 + 29.8))
    assert set(comps) == set(FITNESS_KEYS)
    score, shown = evaluate({"throughput": 2.0, "mean_e2e": 0.5}, comps)
    assert list(shown) == ["mean_e2e", "throughput"]
    assert score == pytest.approx(2.0 * 0.2 + 0.5 / 21)
    assert fitness_text(score, shown).splitlines() == [
        "=== Fitness Evaluation ===", "Score: %.6f" % score, "  mean_e2e: %.6f" % (1 / 21), "  throughput: 0.200000"]


def test_empty_series_give_components_of_one():
    comps = components(IntHistogram(), IntHistogram(), 0.0, 0.0)
    assert comps["throughput"] == 0.0 and comps["p99_ttft"] == 1.0 and comps["mean_e2e"] == 1.0


@pytest.mark.parametrize(("text", "message"), [
    ("speed:1", "--fitness-weights: unknown key 'speed' (accepted: mean_e2e, mean_ttft, p50_e2e, p50_ttft, "
                "p99_e2e, p99_ttft, throughput, tokens_per_sec)"),
    ("throughput", "--fitness-weights: entry 'throughput' must be key:weight"),
    ("throughput:-1", "--fitness-weights: weight of throughput must be a finite number >= 0, got '-1'"),
    ("throughput:nan", "--fitness-weights: weight of throughput must be a finite number >= 0, got 'nan'"),
    ("throughput:x", "--fitness-weights: weight of throughput must be a finite number >= 0, got 'x'"),
    ("throughput:1,throughput:2", "--fitness-weights: key 'throughput' given twice"),
])
def test_bad_weights_are_input_errors(text, message):
    with pytest.raises(InputError) as err:
        parse_weights(text)
    assert str(err.value).startswith(message)


def test_fitness_through_the_api_matches_the_metrics_block():
    res = api.run(_cfg(workload={"num_requests": 60, "rate": 10.0},
                       output={"fitness_weights": "throughput:1,mean_e2e:3"}))
    score, comps = res.fitness
    rps = res.cluster["responses_per_sec"]
    assert comps["throughput"] == rps / (rps + 100)
    # the E2E mean in ticks is the block's mean in ms x 1000 (up to the block's float division)
    assert comps["mean_e2e"] == pytest.approx(1 / (1 + res.cluster["e2e_mean_ms"]))
    assert score == pytest.approx(comps["throughput"] + 3 * comps["mean_e2e"])
    assert "=== Fitness Evaluation ===\nScore: %.6f\n" % score in res.stdout_text()


# ------------------------------------------------------------------------------------------ decision trace
def test_counterfactuals_rank_by_score_then_index_and_regret_by_hand():
    trace = DecisionTrace("round-robin", counterfactual_k=2)

    class Req:
        id = "request_7"

    snaps = [Snapshot(3, 1, 0, 0.1, 10), Snapshot(0, 1, 0, 0.2, 9), Snapshot(0, 0, 1, 0.3, 8)]
    trace.on_routing(Req(), 50, 0, snaps, None)  # loads 4, 1, 1: the policy chose the most loaded
    rec = trace.records[-1]
    assert [c["instance"] for c in rec["candidates"]] == ["instance_1", "instance_2"]  # tie broken by index
    assert rec["regret"] == 3.0  # -1 - (-4)
    trace.on_routing(Req(), 60, 1, snaps, [0.2, 0.9, 0.9])  # a scoring policy: its scores count
    rec = trace.records[-1]
    assert rec["regret"] == 0.0 and rec["candidates"][0]["score"] == 0.9
    s = trace.summary()
    assert s["mean_regret"] == 1.5 and s["max_regret"] == 3.0 and s["total_decisions"] == 0


def test_summary_counts_equal_the_routed_requests_and_least_loaded_has_no_regret():
    res = api.run(_cfg(
        workload={"num_requests": 120, "rate": 40.0}, cluster={"num_instances": 3, "routing_policy": "least-loaded",
                                                                 "admission_policy": "token-bucket",
                                                                 "token_bucket_capacity": 20.0,
                                                                 "token_bucket_refill_rate": 15.0},
        output={"trace_level": "decisions", "counterfactual_k": 3, "summarize_trace": True},
    ))
    s = res.trace.summary()
    routed = res.cluster["injected_requests"]
    assert s["total_decisions"] == 120 and s["admitted"] == routed and s["rejected"] == 120 - routed > 0
    assert s["rejected"] == res.anomalies["rejected_requests"]
    assert sum(s["target_distribution"].values()) == routed
    assert s["target_distribution"] == {i["instance_id"]: i["injected_requests"] for i in res.instances}
    assert s["max_regret"] == 0.0  # least-loaded takes the instance with the smallest effective load
    assert all(len(r["candidates"]) == 3 for r in res.trace.routings)
    text = res.stdout_text()
    section = text[text.index("=== Trace Summary ===\n"):]
    assert section == summary_text(s)
    assert section.splitlines()[:5] == ["=== Trace Summary ===", "Total Decisions: 120", f"  Admitted: {routed}",
                                        f"  Rejected: {120 - routed}", "Unique Targets: 3"]


def test_round_robin_regret_is_positive_under_uneven_load():
    res = api.run(_cfg(workload={"num_requests": 200, "rate": 60.0, "prompt_tokens_stdev": 400},
                       cluster={"num_instances": 2},
                       output={"trace_level": "decisions", "counterfactual_k": 1}))
    regrets = [r["regret"] for r in res.trace.routings]
    assert max(regrets) > 0 and all(r >= 0 for r in regrets)
    for r in res.trace.routings:  # the best candidate's score minus the chosen instance's (minus its load)
        chosen = next((c for c in r["candidates"] if c["instance"] == r["chosen"]), None)
        if chosen is not None:
            assert r["regret"] == 0.0


def test_tracing_changes_no_metric():
    base = _cfg(workload={"num_requests": 80, "rate": 30.0}, cluster={"num_instances": 2,
                                                                      "routing_policy": "weighted"})
    traced = base.model_copy(update={"output": base.output.model_copy(update={"trace_level": "decisions"})})
    assert api.run(base).cluster == api.run(traced).cluster


def test_priority_inversions_reported_with_a_priority_policy():
    res = api.run(_cfg(workload={"num_requests": 150, "rate": 40.0}, engine={"priority_policy": "slo-based"}))
    kept = [r for r in res.requests if r["e2e_ms"] > 0]
    kept.sort(key=lambda r: (r["arrived_at"], int(r["requestID"].rsplit("_", 1)[1])))
    by_instance: dict[str, list[int]] = {}
    for r in kept:
        by_instance.setdefault(r["handled_by"], []).append(round(r["e2e_ms"] * 1000))
    assert res.anomalies["priority_inversions"] == sum(_brute(v) for v in by_instance.values()) > 0
    const = api.run(_cfg(workload={"num_requests": 150, "rate": 40.0}))
    assert const.anomalies["priority_inversions"] == 0


# ------------------------------------------------------------------------------------------ the CLI
def test_cli_trace_output_is_json_lines(invoke, tmp_path):
    out = tmp_path / "trace.jsonl"
    r = invoke("run", "--model", MODEL["model"], "--num-requests", "30", "--num-instances", "2",
                   "--trace-level", "decisions", "--trace-output", str(out))
    assert r.rc == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["kind"] for r in records].count("admission") == 30
    assert [r["kind"] for r in records].count("routing") == 30


def test_cli_trace_output_needs_decisions(invoke, tmp_path):
    out = tmp_path / "trace.jsonl"
    r = invoke("run", "--model", MODEL["model"], "--trace-output", str(out))
    assert r.rc == 2 and r.out == "" and not out.exists()
    assert r.err_lines == ["blis: error: --trace-output needs --trace-level decisions (there is no trace to write "
                           "otherwise)"]


def test_cli_warns_about_trace_options_without_decisions(invoke):
    r = invoke("run", "--model", MODEL["model"], "--num-requests", "5", "--counterfactual-k", "2",
                   "--summarize-trace")
    assert r.rc == 0 and "Trace Summary" not in r.out
    assert "blis: warning: --counterfactual-k 2 has no effect without --trace-level decisions" in r.err_lines
    assert "blis: warning: --summarize-trace has no effect without --trace-level decisions" in r.err_lines


def test_cli_bad_fitness_weights(invoke):
    r = invoke("run", "--model", MODEL["model"], "--fitness-weights", "p42_ttft:1")
    assert r.rc == 2 and r.out == ""
    assert r.err_lines[0].startswith("blis: error: --fitness-weights: unknown key 'p42_ttft'")


def test_summary_weights_sum_stays_finite():
    assert math.isfinite(api.run(_cfg(workload={"num_requests": 5},
                                      output={"fitness_weights": "p99_e2e:1e300"})).fitness[0])
