"""The flag table: every flag of ENGINE.md §15.3 exists, maps to a config field, and --help shows the real default."""

from __future__ import annotations

import math

import pytest

from blis_sim.api import UNAVAILABLE as _UNAVAILABLE_BY_SECTION

UNAVAILABLE = {name: only for (_section, name), only in _UNAVAILABLE_BY_SECTION.items()}

from blis_sim import cli
from blis_sim.config.models import (
    UNLIMITED_HORIZON,
    ClusterConfig,
    EngineConfig,
    LatencyConfig,
    OutputConfig,
    SimulationConfig,
    WorkloadConfig,
)

# Written out from ENGINE.md §15.3 (not derived from cli.FLAGS), in the table's order.
SPEC_FLAGS = """
model hardware tp vllm-version defaults-filepath alpha-coeffs beta-coeffs model-config-folder hardware-config
bench-data-path max-model-len
total-kv-blocks block-size-in-tokens max-num-running-reqs max-num-scheduled-tokens long-prefill-token-threshold
async-scheduling
workload workload-traces-filepath workload-spec arrival-process rate num-requests prefix-tokens
prompt-tokens prompt-tokens-stdev prompt-tokens-min prompt-tokens-max
output-tokens output-tokens-stdev output-tokens-min output-tokens-max seed horizon export-trace
num-instances admission-policy admission-latency routing-latency token-bucket-capacity token-bucket-refill-rate
routing-policy routing-scorers priority-policy scheduler policy-config snapshot-refresh-interval
kv-cpu-blocks kv-offload-threshold kv-transfer-bandwidth kv-transfer-base-latency
trace-level counterfactual-k summarize-trace fitness-weights results-path log
""".split()
EXTENSION_FLAGS = ["quiet", "no-skip-ahead", "latency-model", "timeline-out", "kv-offload-mode", "trace-output",
                   "intervals"]  # blis-sim's own flags, after the reference's

SECTION_MODELS = {
    "latency": LatencyConfig,
    "engine": EngineConfig,
    "workload": WorkloadConfig,
    "cluster": ClusterConfig,
    "output": OutputConfig,
}


def test_flag_table_is_the_spec_table_in_order():
    assert [f.opt for f in cli.FLAGS] == [f"--{name}" for name in SPEC_FLAGS + EXTENSION_FLAGS]


# Fields set through the Python API only (blis calibrate's candidates), never from the command line.
LIBRARY_ONLY_FIELDS = {("latency", "hardware_overrides")}


def test_every_flag_is_a_config_field_and_every_field_a_flag():
    fields = {("", name) for name in SimulationConfig.model_fields if name not in SECTION_MODELS}
    for section, model in SECTION_MODELS.items():
        fields |= {(section, name) for name in model.model_fields}
    assert {(f.section, f.name) for f in cli.FLAGS} == fields - LIBRARY_ONLY_FIELDS


def _model_default(flag):
    model = SimulationConfig if flag.section == "" else SECTION_MODELS[flag.section]
    return model.model_fields[flag.name].default


@pytest.mark.parametrize("flag", cli.FLAGS, ids=lambda f: f.opt)
def test_help_default_matches_the_model_default(flag):
    text = cli.default_text(flag)
    if flag.name == "model":
        assert text == "(required)"
        return
    default = _model_default(flag)
    shown = text.split(" ", 1)[0].split(",")[0] if flag.kind != "coeffs" else text
    if flag.kind == "switch":
        assert default is False and text == "off"
    elif flag.kind == "offswitch":  # --no-<name> not given: the field keeps True
        assert default is True and text == "off"
    elif flag.name == "horizon":
        assert default == UNLIMITED_HORIZON and text == "unlimited"
    elif flag.name == "tp":  # 0 stands for "not given"; an explicit 0 is refused
        assert default == 0 and text == "unset (filled from the defaults file)"
    elif flag.name == "defaults_filepath":
        assert default is None and text == "packaged defaults"
    elif flag.kind == "path":
        assert default is None
    elif flag.kind == "coeffs":
        assert tuple(float(x) for x in shown.split(",")) == default
    elif flag.kind in ("int", "float"):
        assert math.isclose(float(shown), default), (shown, default)
        assert flag.shown == cli.AUTO or flag.name == "total_kv_blocks"  # the model's default, not a copy
    else:  # str / choice
        assert (shown.strip('"') if shown.startswith('"') else shown) == default


def test_help_lists_every_flag_with_its_default(invoke):
    outcome = invoke("run", "--help")
    assert outcome.rc == 0 and outcome.err == ""
    text = " ".join(outcome.out.split())  # undo the wrapping
    for flag in cli.FLAGS:
        assert flag.opt in text
        shown = cli.default_text(flag)
        expected = "[required]" if shown == "(required)" else f"[default: {shown}]"
        assert " ".join(expected.split()) in text, flag.opt
    for heading in ("Model and latency", "vLLM server", "Workload", "Cluster and policies", "CPU KV tier",
                    "Observability and output"):
        assert heading in text


def test_type_error_wording_matches_the_range_wording(invoke, fake_api):
    """A wrong type and a bad range of the same flag say the same "must be ...", e.g. for --num-requests."""
    for flag in cli.FLAGS:
        if flag.kind not in ("int", "float"):
            continue
        bad_type = invoke("run", "--model", "m", flag.opt, "zzz").err.strip()
        assert bad_type == f"blis: error: {flag.opt} must be {flag.accepted}, got 'zzz'"
        out_of_range = {"an integer >= 0": "-1", "an integer >= 1": "0", "a finite number > 0": "0",
                        "a finite number in [0, 1]": "2"}.get(flag.accepted)
        if out_of_range is None:
            continue
        line = invoke("run", "--model", "m", flag.opt, out_of_range).err.strip()
        expected = f"blis: error: {flag.opt} must be {flag.accepted}, got {out_of_range}"
        if flag.name == "tp":  # an explicit 0 also says what leaving the flag out does
            expected += (" (leave --tp out to take the tensor-parallel degree from the defaults file's entry for the "
                         "model)")
        assert line == expected


def test_unavailable_list_names_real_flags():
    assert set(UNAVAILABLE) <= set(cli.FLAG_BY_NAME)
    for name, only in UNAVAILABLE.items():
        assert only == _model_default(cli.FLAG_BY_NAME[name])
