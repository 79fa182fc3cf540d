"""The control plane end to end through the Python API: splits, rejections, stale signals (ENGINE.md §6, §11)."""

from __future__ import annotations

from blis_sim import SimulationConfig, run

MODEL = {"model": "meta-llama/llama-3.1-8b-instruct", "hardware": "H100", "tp": 1,
         "vllm_version": "vllm/vllm-openai:v0.8.4"}


def _run(cluster: dict, workload: dict | None = None, **kw):
    cfg = SimulationConfig(latency=MODEL, cluster=cluster,
                           workload=workload or {"workload": "chatbot", "rate": 40, "num_requests": 200}, **kw)
    return run(cfg)


def _split(res):
    return [block["injected_requests"] for block in res.instances]


def test_round_robin_splits_evenly():
    res = _run({"num_instances": 4})
    assert _split(res) == [50, 50, 50, 50]
    assert [r["handled_by"] for r in res.requests[:5]] == ["instance_0", "instance_1", "instance_2", "instance_3",
                                                           "instance_0"]


def test_always_busiest_piles_everything_on_the_first_instance():
    res = _run({"num_instances": 3, "routing_policy": "always-busiest"})
    assert _split(res) == [200, 0, 0]
    assert res.cluster["completed_requests"] == 200


def test_least_loaded_balances_load():
    res = _run({"num_instances": 4, "routing_policy": "least-loaded"})
    split = _split(res)
    assert sum(split) == 200 and max(split) - min(split) <= 4


def test_reject_all_and_token_bucket_count_rejections():
    res = _run({"admission_policy": "reject-all"})
    assert res.anomalies["rejected_requests"] == 200 and res.cluster["injected_requests"] == 0
    assert res.requests == [] and "Rejected Requests: 200" in res.stdout_text()
    res = _run({"admission_policy": "token-bucket", "token_bucket_capacity": 3000, "token_bucket_refill_rate": 2000})
    rejected = res.anomalies["rejected_requests"]
    assert 0 < rejected < 200 and rejected + res.cluster["injected_requests"] == 200
    assert len(res.requests) == 200 - rejected


def test_kv_utilization_alone_lags_behind_queue_depth_at_a_high_rate():
    """The lagging-signal experiment in small (docs/control-plane.md has the full one): at 5,000 req/s most
    arrivals fall between two steps, when every instance still shows the KV use of the last step, so routing on
    KV use alone piles them up; queue depth counts each routed request at once."""
    workload = {"rate": 5000, "num_requests": 500}
    kv = _run({"num_instances": 4, "routing_policy": "weighted", "routing_scorers": "kv-utilization:1"}, workload)
    qd = _run({"num_instances": 4, "routing_policy": "weighted", "routing_scorers": "queue-depth:1"}, workload)
    assert max(_split(qd)) - min(_split(qd)) <= 2
    assert max(_split(kv)) > 2 * min(_split(kv))
    assert kv.cluster["ttft_p99_ms"] > 2 * qd.cluster["ttft_p99_ms"]


def test_a_refresh_interval_makes_the_kv_signal_staler():
    workload = {"rate": 200, "num_requests": 300}
    cluster = {"num_instances": 4, "routing_policy": "weighted", "routing_scorers": "kv-utilization:1"}
    fresh = _run(cluster, workload)
    stale = _run({**cluster, "snapshot_refresh_interval": 500_000}, workload)  # refreshed every 0.5 s
    assert _split(fresh) != _split(stale)
    assert sum(_split(stale)) == sum(_split(fresh)) == 300


def test_weighted_default_profile_and_prefix_affinity_keep_shared_prefixes_together():
    # a 256-token shared prefix (16 full blocks) and 8 tokens of each request's own: the full blocks are the same
    workload = {"rate": 50, "num_requests": 200, "prefix_tokens": 256, "prompt_tokens": 8, "prompt_tokens_stdev": 0,
                "output_tokens": 32, "output_tokens_stdev": 0}
    pa = _run({"num_instances": 4, "routing_policy": "prefix-affinity"}, workload)
    assert sorted(_split(pa)) == [0, 0, 0, 200]  # one key: one instance
    longer = _run({"num_instances": 4, "routing_policy": "prefix-affinity"}, {**workload, "prompt_tokens": 64})
    assert max(_split(longer)) < 100  # the key covers each request's own full blocks too: spread least-loaded
    weighted = _run({"num_instances": 4, "routing_policy": "weighted"}, workload)
    assert weighted.cluster["completed_requests"] == 200
    assert weighted.kv["cache_hit_rate"] > 0.5
