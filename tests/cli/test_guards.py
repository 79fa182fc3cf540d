"""Runs that would never end or would exhaust memory are refused up front, with the estimate (src/blis_sim/guards.py);
realistic runs are not."""

from __future__ import annotations

import pytest

from blis_sim import cli, guards
from blis_sim.errors import InputError

MODEL = ("run", "--model", "meta-llama/llama-3.1-8b-instruct", "--beta-coeffs", "700,5,3", "--quiet")


def _blis(capsys, *args: str):
    rc = cli.run_cli([*MODEL, *args], prog_name="blis")
    out = capsys.readouterr()
    return rc, out.out, out.err.splitlines()


@pytest.mark.parametrize("args,start,words", [
    (("--num-instances", str(10**18)), f"blis: error: --num-instances {10**18}: the run would need about",
     ["instance(s) x 12 KB", "accepted: fewer instances"]),
    (("--num-requests", str(10**18)), f"blis: error: --num-requests {10**18}: the run would take about",
     ["years", "accepted: at most 10,000,000,000 requests"]),
    (("--rate", "1000000", "--horizon", str(10**14), "--num-requests", str(10**15)),
     "blis: error: --rate 1e+06 up to --horizon 100000000000000 (about", ["years"]),
])
def test_refused_with_the_estimate(capsys, tmp_path, args, start, words):
    results = tmp_path / "r.json"
    rc, out, err = _blis(capsys, *args, "--results-path", str(results))
    assert rc == 2 and out == "" and len(err) == 1, err
    assert err[0].startswith(start), err[0]
    for w in words:
        assert w in err[0]
    assert not results.exists()


def test_records_count_only_with_a_results_file():
    n = 50_000_000  # 60 GB of records
    with pytest.raises(InputError, match=r"--num-requests 50000000 with per-request records \(--results-path\): "
                                         r"the run would need about 56\.1 GB .* more than the 8\.0 GB available"):
        guards.check_run_size(1, n, records=True, available=8 * 2**30)
    guards.check_run_size(1, n, records=False, available=8 * 2**30)  # the metrics alone do not grow with requests


def test_realistic_runs_pass():
    # a million requests with records and a 64-instance cluster fit in 2 GB
    guards.check_run_size(64, 1_000_000, records=True, available=2 * 2**30)
    guards.check_run_size(1, 10**10, records=False, available=2**30)


def test_horizon_caps_the_count():
    assert guards.expected_requests(10**15, 1e6, 10**8) < 10**8 + 10**6  # 100 s at 1e6/s
    assert guards.expected_requests(100, 1e6, 10**14) == 100
    assert guards.expected_requests(100, None, 10) == 100


def test_available_memory_is_known_here():
    avail = guards.available_memory()
    assert avail is None or avail > 0


def test_workload_spec_requests_count_as_drawn_before_the_run():
    """A workload spec draws every request before the run (about 310 B each): 100,000,000 of them need about 37 GB
    whether or not records are kept, while the same count from --num-requests streams."""
    n = 100_000_000
    with pytest.raises(InputError, match=r"^--workload-spec s\.yaml: num_requests 100,000,000: the run would need "
                                         r"about 37\.4 GB .*workload-spec requests drawn before the run x 400 B\), "
                                         r"more than the 8\.0 GB available; accepted: fewer requests"):
        guards.check_run_size(1, n, records=False, available=8 * 2**30,
                              source="--workload-spec s.yaml: num_requests 100,000,000", drawn_upfront=True)
    guards.check_run_size(1, n, records=False, available=8 * 2**30)


def test_a_workload_spec_is_sized_before_its_requests_are_drawn(capsys, tmp_path):
    """num_requests 2^63 in a spec used to draw arrivals until memory ran out (found by the fuzz suite)."""
    spec = tmp_path / "s.yaml"
    spec.write_text("version: '1'\naggregate_rate: 10\nnum_requests: 9223372036854775808\nclients:\n- id: a\n"
                    "  rate_fraction: 1\n  arrival: {process: poisson}\n"
                    "  input_distribution: {type: constant, params: {value: 20}}\n"
                    "  output_distribution: {type: constant, params: {value: 4}}\n")
    rc, out, err = _blis(capsys, "--workload-spec", str(spec))
    assert rc == 2 and out == "" and len(err) == 1
    assert err[0].startswith(f"blis: error: --workload-spec {spec}: num_requests 9,223,372,036,854,775,808: the run "
                             "would take about"), err[0]
    spec.write_text(spec.read_text().replace("num_requests: 9223372036854775808", "num_requests: 0")
                    .replace("aggregate_rate: 10", "aggregate_rate: 1000000"))
    rc, out, err = _blis(capsys, "--workload-spec", str(spec), "--horizon", str(10**14))
    assert rc == 2 and "aggregate_rate 1e+06 up to --horizon 100000000000000 (about" in err[0], err
