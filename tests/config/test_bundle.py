"""The policy bundle (``--policy-config FILE``, ENGINE.md §11.5): schema, precedence, errors, warnings, examples.

Policies the engine or the cluster does not build are refused by ``api.check_available``; the tests of that refusal
take a policy out of its table for the test, so they hold whichever policies are built.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

import blis_sim
from blis_sim import api, logging_setup
from blis_sim.cluster.policies import ADMISSION_POLICIES as ADMISSION_TABLE
from blis_sim.cluster.policies import ROUTING_POLICIES as ROUTING_TABLE
from blis_sim.config import SimulationConfig, names
from blis_sim.config.bundle import (
    TARGETS,
    apply_bundle,
    load_bundle,
    parse_bundle,
    with_policy_bundle,
)
from blis_sim.engine.policy import PRIORITY_POLICIES as PRIORITY_TABLE
from blis_sim.engine.policy import SCHEDULING_POLICIES as SCHEDULER_TABLE
from blis_sim.errors import InputError


def _cli_fixtures():
    """tests/cli/conftest.py under a name of its own (every conftest module is called ``conftest``)."""
    path = Path(__file__).resolve().parents[1] / "cli" / "conftest.py"
    spec = importlib.util.spec_from_file_location("blis_cli_test_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_CLI = _cli_fixtures()
fake_api = _CLI.fake_api  # stands in for api.prepare/execute (``invoke`` comes from tests/conftest.py)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
M = ("run", "--model", "m")
# a blackbox run that needs no defaults-file entry: explicit coefficients
LATENCY = {"model": "m", "alpha_coeffs": (100.0, 1.0, 1.0), "beta_coeffs": (1000.0, 1.0, 1.0)}

FULL = """\
admission:
  policy: token-bucket
  token_bucket_capacity: 5000
  token_bucket_refill_rate: 250.5
routing:
  policy: weighted
  scorers:
    - name: queue-depth
      weight: 2
    - name: load-balance
      weight: 0.5
priority:
  policy: slo-based
scheduler: sjf
"""
# what FULL sets, per configuration field
FULL_FIELDS = {
    ("cluster", "admission_policy"): "token-bucket",
    ("cluster", "token_bucket_capacity"): 5000.0,
    ("cluster", "token_bucket_refill_rate"): 250.5,
    ("cluster", "routing_policy"): "weighted",
    ("cluster", "routing_scorers"): "queue-depth:2,load-balance:0.5",
    ("engine", "priority_policy"): "slo-based",
    ("engine", "scheduler"): "sjf",
}
# bundle key -> (names the flag accepts, the table of what is built)
POLICY_KEYS = {
    "admission.policy": (names.ADMISSION_POLICIES, ADMISSION_TABLE),
    "routing.policy": (names.ROUTING_POLICIES, ROUTING_TABLE),
    "priority.policy": (names.PRIORITY_POLICIES, PRIORITY_TABLE),
    "scheduler": (names.SCHEDULERS, SCHEDULER_TABLE),
}


def _yaml_for(key: str, value: str) -> str:
    section, _, leaf = key.partition(".")
    return f"{section}: {value}\n" if not leaf else f"{section}:\n  {leaf}: {value}\n"


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    """Work in a fresh folder, so that messages name the bundle as given on the command line: bundle.yaml."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(text: str | bytes, name: str = "bundle.yaml") -> str:
    path = Path(name)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return name


def config(**sections) -> SimulationConfig:
    return SimulationConfig(latency=LATENCY, **sections)


def assert_input_error(outcome, expected: str) -> None:
    assert outcome.rc == 2, outcome
    assert outcome.out == ""
    assert outcome.err_lines == [f"blis: error: {expected}"]


# ----- the schema ---------------------------------------------------------------------------------------------------


def test_every_key_is_read_in_the_configurations_form():
    bundle = parse_bundle(FULL, "--policy-config b.yaml", "b.yaml")
    assert bundle.source == "b.yaml"
    assert {TARGETS[key]: value for key, value in bundle.values.items()} == FULL_FIELDS
    assert set(TARGETS) == set(bundle.values)  # FULL covers the whole schema


@pytest.mark.parametrize("text", ["", "# only a comment\n", "admission:\nrouting:\n  policy:\n  scorers:\nscheduler:\n",
                                  "priority: {}\n"])
def test_an_empty_bundle_or_a_key_without_value_sets_nothing(text):
    assert dict(parse_bundle(text, "w", "s").values) == {}


def test_scorers_keep_their_order_and_weights_exactly():
    text = "routing:\n  scorers:\n    - {name: kv-utilization, weight: 0.1}\n    - {name: prefix-affinity, weight: 3}\n"
    assert parse_bundle(text, "w", "s").values == {"routing.scorers": "kv-utilization:0.1,prefix-affinity:3"}


def test_the_file_is_read_again_when_it_changes(here):
    write("scheduler: fcfs\n")
    assert load_bundle("bundle.yaml").values == {"scheduler": "fcfs"}
    write("scheduler: sjf\nrouting: {policy: least-loaded}\n")
    assert load_bundle("bundle.yaml").values == {"scheduler": "sjf", "routing.policy": "least-loaded"}


# ----- precedence: explicit flags win, the bundle wins over defaults ------------------------------------------------


def test_the_bundle_wins_over_defaults_and_is_set_still_means_explicit(here):
    cfg = config(cluster={"policy_config": write(FULL)})
    out = with_policy_bundle(cfg)
    for (section, field), value in FULL_FIELDS.items():
        assert getattr(getattr(out, section), field) == value
        assert not getattr(out, section).is_set(field)  # a bundle value is not an explicit flag
    assert out.cluster.model_fields_set == {"policy_config"}
    assert out.engine.model_fields_set == set()
    assert out.model_fields_set == cfg.model_fields_set
    # everything else is untouched, and the result is frozen like any configuration
    assert out.latency == cfg.latency and out.workload == cfg.workload and out.seed == cfg.seed
    with pytest.raises(ValidationError, match="frozen"):
        out.cluster.routing_policy = "round-robin"  # type: ignore[misc]
    assert with_policy_bundle(out) == out  # applying it twice changes nothing


def test_explicit_values_win_even_when_they_equal_the_default(here):
    cfg = config(
        cluster={"policy_config": write(FULL), "routing_policy": "round-robin", "token_bucket_capacity": 10000.0},
        engine={"scheduler": "fcfs"},
    )
    out = with_policy_bundle(cfg)
    assert out.cluster.routing_policy == "round-robin" and out.cluster.is_set("routing_policy")
    assert out.cluster.token_bucket_capacity == 10000.0 and out.cluster.is_set("token_bucket_capacity")
    assert out.engine.scheduler == "fcfs" and out.engine.is_set("scheduler")
    # the keys no flag names still apply
    assert out.cluster.admission_policy == "token-bucket"
    assert out.cluster.token_bucket_refill_rate == 250.5
    assert out.cluster.routing_scorers == "queue-depth:2,load-balance:0.5"
    assert out.engine.priority_policy == "slo-based"


def test_routing_scorers_flag_replaces_the_bundles_list(here):
    cfg = config(cluster={"policy_config": write(FULL), "routing_scorers": "prefix-affinity:1"})
    assert with_policy_bundle(cfg).cluster.routing_scorers == "prefix-affinity:1"


def test_no_bundle_returns_the_configuration_itself():
    cfg = config()
    assert with_policy_bundle(cfg) is cfg


def test_applied_and_overridden_values_are_logged_at_info(here, caplog):
    cfg = config(cluster={"policy_config": write("routing: {policy: least-loaded}\nscheduler: sjf\n"),
                          "routing_policy": "round-robin"})
    with caplog.at_level(logging.INFO, logger="blis_sim"):
        apply_bundle(cfg, load_bundle("bundle.yaml"))
    assert [r.getMessage() for r in caplog.records] == [
        "--policy-config bundle.yaml: applied scheduler=sjf",
        "--policy-config bundle.yaml: overridden by flags: routing.policy=least-loaded (--routing-policy round-robin)",
    ]


def test_through_the_cli_flags_win_and_bundle_values_are_not_explicit(here, invoke, fake_api):
    write("admission:\n  policy: reject-all\nrouting:\n  policy: least-loaded\n")
    outcome = invoke(*M, "--policy-config", "bundle.yaml", "--routing-policy", "round-robin", "--log", "info")
    assert outcome.rc == 0, outcome.err
    cfg = fake_api.cfg
    assert cfg.cluster.admission_policy == "reject-all" and not cfg.cluster.is_set("admission_policy")
    assert cfg.cluster.routing_policy == "round-robin" and cfg.cluster.is_set("routing_policy")
    assert [line for line in outcome.err_lines if "policy-config" in line] == [
        "blis: info: --policy-config bundle.yaml: applied admission.policy=reject-all",
        ("blis: info: --policy-config bundle.yaml: overridden by flags: routing.policy=least-loaded "
        "(--routing-policy round-robin)"),
    ]


def test_through_the_python_api_a_run_uses_the_bundle(here):
    write("admission:\n  policy: reject-all\n")
    cfg = config(cluster={"policy_config": "bundle.yaml"}, workload={"num_requests": 3})
    assert api.prepare(cfg).cfg.cluster.admission_policy == "reject-all"
    results = blis_sim.run(cfg)
    assert results.anomalies["rejected_requests"] == 3
    assert results.cluster["completed_requests"] == 0


def test_a_bundle_of_defaults_runs_like_no_bundle(here):
    write("admission: {policy: always-admit}\nrouting: {policy: round-robin}\npriority: {policy: constant}\n"
          "scheduler: fcfs\n")
    base = config(cluster={"num_instances": 2}, workload={"num_requests": 20})
    with_bundle = config(cluster={"num_instances": 2, "policy_config": "bundle.yaml"}, workload={"num_requests": 20})
    assert blis_sim.run(with_bundle).stdout_text() == blis_sim.run(base).stdout_text()


# ----- policies this version does not build yet: refused like their flag, naming the bundle -------------------------
# A name leaves its table for the test (monkeypatch.delitem), so these hold whichever policies are built.


def _built_non_default(key: str) -> str:
    accepted, table = POLICY_KEYS[key]
    return [name for name in accepted if name in table][-1]


@pytest.mark.parametrize("key", sorted(POLICY_KEYS))
def test_a_policy_not_built_is_refused_naming_the_bundle(here, invoke, fake_api, monkeypatch, key):
    name = _built_non_default(key)
    table = POLICY_KEYS[key][1]
    monkeypatch.delitem(table, name)
    write(_yaml_for(key, name))
    assert_input_error(
        invoke(*M, "--policy-config", "bundle.yaml"),
        f"--policy-config bundle.yaml: {key} {name} is not available in this version yet (only {', '.join(table)})",
    )
    assert fake_api.calls == []


@pytest.mark.parametrize("key", sorted(POLICY_KEYS))
def test_a_built_policy_from_the_bundle_is_accepted(here, invoke, fake_api, key):
    name = _built_non_default(key)
    write(_yaml_for(key, name))
    outcome = invoke(*M, "--policy-config", "bundle.yaml")
    assert outcome.rc == 0, outcome.err
    section, field = TARGETS[key]
    assert getattr(getattr(fake_api.cfg, section), field) == name


def test_a_flag_naming_a_policy_not_built_is_named_as_the_flag(here, invoke, fake_api, monkeypatch):
    monkeypatch.delitem(SCHEDULER_TABLE, "sjf")
    write("scheduler: sjf\n")
    assert_input_error(
        invoke(*M, "--policy-config", "bundle.yaml", "--scheduler", "sjf"),
        f"--scheduler sjf is not available in this version yet (only {', '.join(SCHEDULER_TABLE)})",
    )
    # without the bundle, or with a bundle that does not name it: the flag too
    write("routing: {policy: round-robin}\n")
    assert_input_error(
        invoke(*M, "--policy-config", "bundle.yaml", "--scheduler", "sjf"),
        f"--scheduler sjf is not available in this version yet (only {', '.join(SCHEDULER_TABLE)})",
    )


# ----- errors: one line naming the file and the key path ------------------------------------------------------------

CONTENT_ERRORS = [
    # unknown keys, at every level
    ("schedular: fcfs\n",
     "unknown key schedular (accepted there: admission, routing, priority, scheduler)"),
    ("admission:\n  policy: always-admit\n  capacity: 10\n",
     "unknown key admission.capacity (accepted there: policy, token_bucket_capacity, token_bucket_refill_rate)"),
    ("routing:\n  scorer:\n    - {name: queue-depth, weight: 1}\n",
     "unknown key routing.scorer (accepted there: policy, scorers)"),
    ("priority:\n  policy: constant\n  level: 3\n", "unknown key priority.level (accepted there: policy)"),
    ("routing:\n  scorers:\n    - {name: queue-depth, wieght: 1}\n",
     "unknown key routing.scorers[0].wieght (accepted there: name, weight)"),
    ("1: fcfs\n", "unknown key 1 (accepted there: admission, routing, priority, scheduler)"),
    # names outside the flags' sets
    ("admission: {policy: admit-all}\n",
     "admission.policy must be one of always-admit, reject-all, token-bucket; got 'admit-all'"),
    ("routing: {policy: random}\n",
     ("routing.policy must be one of always-busiest, least-loaded, prefix-affinity, round-robin, weighted; "
     "got 'random'")),
    ("priority: {policy: high}\n", "priority.policy must be one of constant, inverted-slo, slo-based; got 'high'"),
    ("scheduler: 3\n",
     "scheduler must be one of fcfs, priority-fcfs, reverse-priority, sjf, vllm-priority; got 3"),
    ("scheduler: [fcfs]\n",
     "scheduler must be one of fcfs, priority-fcfs, reverse-priority, sjf, vllm-priority; got a list"),
    # numbers: finite and > 0, numbers only
    ("admission: {token_bucket_capacity: 0}\n", "admission.token_bucket_capacity must be a finite number > 0, got 0"),
    ("admission: {token_bucket_capacity: -2.5}\n",
     "admission.token_bucket_capacity must be a finite number > 0, got -2.5"),
    ("admission: {token_bucket_capacity: .inf}\n",
     "admission.token_bucket_capacity must be a finite number > 0, got inf"),
    ("admission: {token_bucket_refill_rate: .nan}\n",
     "admission.token_bucket_refill_rate must be a finite number > 0, got nan"),
    ("admission: {token_bucket_refill_rate: '100'}\n",
     "admission.token_bucket_refill_rate must be a finite number > 0, got '100'"),
    ("admission: {token_bucket_refill_rate: true}\n",
     "admission.token_bucket_refill_rate must be a finite number > 0, got true"),
    # scorers: a non-empty list of {name, weight}, names valid and unique, weights finite > 0
    (("routing:\n  policy: weighted\n  scorers:\n    - {name: queue-depth, weight: 2}\n"
     "    - {name: kv-utilization, weight: 0}\n"),
     "routing.scorers[1].weight must be a finite number > 0, got 0"),
    ("routing:\n  scorers:\n    - {name: queue-depth, weight: -1}\n",
     "routing.scorers[0].weight must be a finite number > 0, got -1"),
    ("routing:\n  scorers:\n    - {name: queue-depth, weight: .inf}\n",
     "routing.scorers[0].weight must be a finite number > 0, got inf"),
    ("routing:\n  scorers:\n    - {name: queue-depth, weight: '2'}\n",
     "routing.scorers[0].weight must be a finite number > 0, got '2'"),
    ("routing:\n  scorers:\n    - {name: queue-depth, weight: }\n",
     "routing.scorers[0].weight must be a finite number > 0, got null"),
    ("routing:\n  scorers:\n    - {name: cache-hit, weight: 1}\n",
     ("routing.scorers[0].name must be one of kv-utilization, load-balance, prefix-affinity, queue-depth; "
     "got 'cache-hit'")),
    (("routing:\n  scorers:\n    - {name: queue-depth, weight: 1}\n    - {name: load-balance, weight: 1}\n"
     "    - {name: queue-depth, weight: 2}\n"),
     "routing.scorers[2].name repeats queue-depth (already routing.scorers[0]); each scorer may be listed once"),
    ("routing:\n  scorers:\n    - {weight: 1}\n",
     "routing.scorers[0].name is missing (one of kv-utilization, load-balance, prefix-affinity, queue-depth)"),
    ("routing:\n  scorers:\n    - {name: queue-depth}\n",
     "routing.scorers[0].weight is missing (a finite number > 0)"),
    ("routing:\n  scorers:\n    - queue-depth:2\n",
     "routing.scorers[0] must be a mapping with keys name, weight; got 'queue-depth:2'"),
    ("routing:\n  scorers: queue-depth:2,kv-utilization:1\n",
     ("routing.scorers must be a list of scorers, each a mapping with keys name, weight; "
     "got 'queue-depth:2,kv-utilization:1'")),
    ("routing:\n  scorers: []\n",
     ("routing.scorers must list at least one scorer (leave the key out for the default profile "
     "prefix-affinity:3, queue-depth:2, kv-utilization:2)")),
    # sections that are not mappings
    ("admission: token-bucket\n",
     ("admission must be a mapping with keys policy, token_bucket_capacity, token_bucket_refill_rate; "
     "got 'token-bucket' (for example admission: {policy: token-bucket})")),
    ("routing: [weighted]\n", "routing must be a mapping with keys policy, scorers; got a list"),
    # duplicate keys: PyYAML would keep the last one silently
    ("routing:\n  policy: weighted\n  policy: round-robin\n",
     "duplicate key routing.policy at line 3 (first at line 2; a key may appear once)"),
    ("scheduler: fcfs\nrouting: {policy: weighted}\nscheduler: sjf\n",
     "duplicate key scheduler at line 3 (first at line 1; a key may appear once)"),
    ("routing:\n  scorers:\n    - name: queue-depth\n      weight: 1\n      weight: 2\n",
     "duplicate key routing.scorers[0].weight at line 5 (first at line 4; a key may appear once)"),
    # YAML syntax, with the line
    ("routing:\n  policy: [weighted\n", "not valid YAML at line 3 column 1 (expected ',' or ']', but got '<stream end>')"),
    ("routing:\n policy: weighted\n  scorers: []\n",
     "not valid YAML at line 3 column 10 (mapping values are not allowed here)"),
    ("scheduler: fcfs\n---\nscheduler: sjf\n", "not valid YAML at line 2 column 1 (but found another document)"),
    # not a mapping
    ("- admission\n- routing\n",
     "must be a YAML mapping with keys admission, routing, priority, scheduler; got a list"),
    ("fcfs\n", "must be a YAML mapping with keys admission, routing, priority, scheduler; got 'fcfs'"),
]


@pytest.mark.parametrize(("text", "message"), CONTENT_ERRORS)
def test_content_errors_through_the_cli(here, invoke, fake_api, text, message):
    write(text)
    assert_input_error(invoke(*M, "--policy-config", "bundle.yaml"), f"--policy-config bundle.yaml: {message}")
    assert fake_api.calls == []


@pytest.mark.parametrize(("text", "message"), CONTENT_ERRORS)
def test_content_errors_through_the_python_api(here, text, message):
    write(text)
    with pytest.raises(InputError) as caught:
        blis_sim.run(config(cluster={"policy_config": "bundle.yaml"}))
    assert str(caught.value) == f"--policy-config bundle.yaml: {message}"


def test_an_error_beats_explicit_flags_for_every_key(here, invoke, fake_api):
    # a flag wins over a key's value, but the file must still be valid as a whole
    write("routing: {policy: random}\n")
    outcome = invoke(*M, "--policy-config", "bundle.yaml", "--routing-policy", "round-robin")
    assert_input_error(outcome, "--policy-config bundle.yaml: routing.policy must be one of always-busiest, "
                                "least-loaded, prefix-affinity, round-robin, weighted; got 'random'")


def test_file_errors(here, invoke, fake_api):
    assert_input_error(invoke(*M, "--policy-config", "missing.yaml"),
                       "--policy-config missing.yaml: no such file (a YAML policy bundle is required)")
    os.mkdir("folder")
    assert_input_error(invoke(*M, "--policy-config", "folder"),
                       "--policy-config folder: is a directory (a YAML policy bundle is required)")
    write(b"scheduler: \xff\xfe\n")
    assert_input_error(invoke(*M, "--policy-config", "bundle.yaml"),
                       "--policy-config bundle.yaml: cannot be read (not UTF-8 text: invalid start byte at byte 11)")
    assert fake_api.calls == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file(here, invoke, fake_api):
    os.chmod(write("scheduler: fcfs\n"), 0)
    assert_input_error(invoke(*M, "--policy-config", "bundle.yaml"),
                       "--policy-config bundle.yaml: cannot be read (Permission denied)")


def test_the_python_api_reports_a_missing_file_the_same_way(here):
    with pytest.raises(InputError, match=r"^--policy-config nope\.yaml: no such file \(a YAML policy bundle is "
                                         r"required\)$"):
        api.prepare(config(cluster={"policy_config": "nope.yaml"}))


def test_errors_in_the_bundle_come_before_the_feature_check(here, invoke, fake_api, monkeypatch):
    # §15.2 (4): the bundle is a file of the configuration; a feature not built yet is refused after it
    monkeypatch.delitem(SCHEDULER_TABLE, "sjf")
    write("scheduler: none\n")
    outcome = invoke(*M, "--policy-config", "bundle.yaml", "--scheduler", "sjf")
    assert outcome.err_lines[0].startswith("blis: error: --policy-config bundle.yaml: scheduler must be one of")


def test_held_info_lines_are_dropped_when_the_run_fails_later(here, invoke, fake_api, monkeypatch):
    monkeypatch.delitem(SCHEDULER_TABLE, "sjf")
    write("routing: {policy: round-robin}\n")
    outcome = invoke(*M, "--policy-config", "bundle.yaml", "--scheduler", "sjf", "--log", "info")
    assert_input_error(outcome, f"--scheduler sjf is not available in this version yet "
                                f"(only {', '.join(SCHEDULER_TABLE)})")


# ----- scorers with a routing policy other than weighted: ignored with one warning (§11.2) --------------------------


def test_scorers_flag_without_weighted_routing_warns_once(invoke, fake_api):
    outcome = invoke(*M, "--routing-scorers", "queue-depth:1", "--routing-policy", "least-loaded")
    assert outcome.rc == 0, outcome.err
    assert outcome.err_lines == [
        ("blis: warning: --routing-scorers queue-depth:1 ignored: scorers apply to --routing-policy weighted only "
        "(the routing policy is least-loaded)")
    ]


def test_bundle_scorers_without_weighted_routing_warn_once(here, invoke, fake_api):
    write("routing:\n  policy: weighted\n  scorers:\n    - {name: load-balance, weight: 1}\n")
    outcome = invoke(*M, "--policy-config", "bundle.yaml", "--routing-policy", "round-robin")
    assert outcome.rc == 0, outcome.err
    assert outcome.err_lines == [
        ("blis: warning: --policy-config bundle.yaml: routing.scorers load-balance:1 ignored: scorers apply to "
        "--routing-policy weighted only (the routing policy is round-robin)")
    ]


def test_scorers_with_weighted_routing_do_not_warn(here, invoke, fake_api):
    write("routing:\n  policy: weighted\n  scorers:\n    - {name: load-balance, weight: 1}\n")
    if "weighted" not in ROUTING_TABLE:
        pytest.skip("weighted routing is not built yet")
    outcome = invoke(*M, "--policy-config", "bundle.yaml")
    assert outcome.rc == 0, outcome.err
    assert outcome.err == ""
    assert fake_api.cfg.cluster.routing_scorers == "load-balance:1"


def test_the_python_api_warns_once_per_prepare(caplog):
    cfg = config(cluster={"routing_scorers": "queue-depth:1"}, workload={"num_requests": 2})
    with caplog.at_level(logging.WARNING, logger="blis_sim"):
        blis_sim.run(cfg)
    ignored = [r for r in caplog.records if "ignored: scorers apply" in r.getMessage()]
    assert len(ignored) == 1 and ignored[0].levelno == logging.WARNING


# ----- the project's examples ---------------------------------------------------------------------------------------


def _example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml"))


def test_there_are_examples():
    assert {p.name for p in _example_files()} >= {"weighted-routing.yaml", "token-bucket.yaml", "priority.yaml"}


@pytest.mark.parametrize("path", _example_files(), ids=lambda p: p.name)
def test_every_example_is_valid_and_runs_or_is_refused_as_not_built(path):
    bundle = load_bundle(path)
    assert bundle.values  # an example sets something
    cfg = config(cluster={"policy_config": path, "num_instances": 2}, workload={"num_requests": 10})
    unbuilt = [(key, value) for key, value in bundle.values.items()
               if key in POLICY_KEYS and value not in POLICY_KEYS[key][1]]
    if unbuilt:
        with pytest.raises(InputError) as caught:
            blis_sim.run(cfg)
        assert any(str(caught.value).startswith(f"--policy-config {path}: {key} {value} is not available in this "
                                                "version yet (only ") for key, value in unbuilt), caught.value
        return
    results = blis_sim.run(cfg)
    assert results.cluster["injected_requests"] + results.anomalies["rejected_requests"] == 10


@pytest.fixture(autouse=True)
def _reset_logging():
    yield
    logging_setup.reset()
