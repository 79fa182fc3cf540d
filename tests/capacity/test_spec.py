"""Sweep files: expansion into points, and every validation error naming the file and the YAML path."""

from __future__ import annotations

from pathlib import Path

import pytest
from capacity_helpers import BASE, FOLDER, HW

from blis_sim import cli
from blis_sim.capacity.sweep import load_sweep, make_sweep
from blis_sim.errors import InputError


def test_points_are_the_cartesian_product_in_axis_order(write_sweep):
    spec = load_sweep(write_sweep(BASE, {"tp": [1, 2], "rate": [5, 10, 20]}))
    assert len(spec.points) == 6
    assert [v for v in spec.values][:4] == [{"tp": 1, "rate": 5}, {"tp": 1, "rate": 10}, {"tp": 1, "rate": 20},
                                             {"tp": 2, "rate": 5}]
    cfg = spec.points[4]
    assert cfg.latency.tp == 2 and cfg.workload.rate == 10 and cfg.workload.workload == "chatbot"
    assert cfg.latency.is_set("tp") and cfg.workload.is_set("rate")
    assert spec.config_axes == ["tp"]


def test_relative_paths_are_relative_to_the_file(tmp_path):
    folder = tmp_path / "sweeps"
    folder.mkdir()
    (folder / "s.yaml").write_text(
        "base: {model: m, model_config_folder: cfgs/llama, hardware_config: hw.json, hardware: H100}\n"
        "axes: {rate: [1]}\n")
    spec = load_sweep(folder / "s.yaml")
    assert spec.points[0].latency.model_config_folder == folder / "cfgs" / "llama"
    assert spec.points[0].latency.hardware_config == folder / "hw.json"


def test_any_run_field_is_an_axis():
    spec = make_sweep({"base": {"model": "m"}, "axes": {
        "num_instances": [1, 2], "routing_policy": ["round-robin", "least-loaded"], "max_num_scheduled_tokens": [512],
        "max_num_running_reqs": [64], "latency_model": ["blackbox"], "hardware": ["H100"], "model": ["a", "b"]}})
    assert len(spec.points) == 8
    assert {c.cluster.routing_policy for c in spec.points} == {"round-robin", "least-loaded"}
    assert {c.latency.model for c in spec.points} == {"a", "b"}


@pytest.mark.parametrize(("text", "message"), [
    ("base: {model: m}\naxes: {tp: [1, 0]}\n", "axes.tp[1]: must be an integer >= 1, got 0"),
    ("base: {model: m}\naxes: {rate: [5, -1]}\n", "axes.rate[1]: must be a finite number > 0, got -1"),
    ("base: {model: m, rate: 0}\naxes: {tp: [1]}\n", "base.rate: must be a finite number > 0, got 0"),
    ("base: {model: m}\naxes: {tp: [1, 2.5]}\n", "axes.tp[1]: must be an integer"),
    ("base: {model: m}\naxes: {routing_policy: [round-robin, fastest]}\n",
     "axes.routing_policy[1]: must be one of"),
    ("base: {model: m}\naxes: {tpp: [1]}\n", "axes.tpp: unknown run field 'tpp'; did you mean tp?"),
    ("base: {model: m, ratee: 3}\naxes: {tp: [1]}\n", "base.ratee: unknown run field 'ratee'; did you mean rate?"),
    ("base: {model: m}\naxes: {results_path: [a.json]}\n", "axes.results_path: results_path is an output setting"),
    ("base: {model: m}\naxes: {tp: 2}\n", "axes.tp: must be a non-empty list of values, got 2"),
    ("base: {model: m}\naxes: {tp: []}\n", "axes.tp: must be a non-empty list of values"),
    ("base: {model: m}\naxes: {tp: [1, 1]}\n", "axes.tp[1]: 1 repeats axes.tp[0]"),
    ("base: {model: m}\naxes: {tp: [[1, 2]]}\n", "axes.tp[0]: must be a single value"),
    ("base: {model: m}\n", "axes: must be a mapping of run fields to lists of values"),
    ("base: {tp: 1}\naxes: {rate: [1]}\n", "base.model: required"),
    ("base: {model: m, model_config_folder: x}\naxes: {rate: [1]}\n",
     "base: model_config_folder and hardware_config must be given together"),
    ("base: {model: m}\naxes: {rate: [1]}\nsweep: 3\n", "unknown key 'sweep'"),
    ("base: {model: m}\naxes: {rate: [1]}\nslo: ttft_p91_ms<=3\n", "slo: unknown metric 'ttft_p91_ms'"),
    ("base: {model: m, prompt_tokens_max: 100}\naxes: {prompt_tokens: [50, 500]}\n",
     "axes: the point prompt_tokens=500: prompt_tokens must lie between prompt_tokens_min and prompt_tokens_max"),
    ("- a\n- b\n", "must be a mapping with base and axes"),
    ("base: [\n", "not valid YAML (line 2 column 1)"),
])
def test_validation_errors_name_the_file_and_the_yaml_path(tmp_path, text, message):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_sweep(path)
    assert str(err.value).startswith(f"--config {path}: ")
    assert message in str(err.value)


def test_a_bad_combination_names_the_point(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("base: {model: m}\naxes: {prompt_tokens_min: [1, 300], prompt_tokens: [200, 400]}\n")
    with pytest.raises(InputError, match=r"axes: the point prompt_tokens_min=300 prompt_tokens=200: "):
        load_sweep(path)


def test_missing_file():
    with pytest.raises(InputError, match=r"^--config nope.yaml: no such file \(a sweep YAML file is required\)$"):
        load_sweep(Path("nope.yaml"))


def test_cli_error_is_one_line_exit_2_nothing_written(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text(f"base: {{model: m, model_config_folder: {FOLDER}, hardware_config: {HW}}}\n"
                    "axes: {tp: [1, 0]}\n")
    out = tmp_path / "out"
    rc = cli.run_cli(["sweep", "--config", str(path), "--output", str(out)])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert captured.err == f"blis: error: --config {path}: axes.tp[1]: must be an integer >= 1, got 0 (leave tp out " \
                           "to take the tensor-parallel degree from the defaults file's entry for the model)\n"
    assert not out.exists()


def test_cli_refuses_a_bad_point_setting_before_running(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text("base: {model: m, kv_offload_mode: nope}\naxes: {rate: [1, 2]}\n")
    rc = cli.run_cli(["sweep", "--config", str(path), "--output", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert captured.err.startswith(f"blis: error: --config {path}: base.kv_offload_mode")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["rate-tp.yaml", "gpus-200.yaml", "policies.yaml"])
def test_the_example_sweeps_load(name):
    path = Path(__file__).resolve().parents[2] / "examples" / "sweeps" / name
    spec = load_sweep(path)
    cfg = spec.points[0]
    assert cfg.latency.model_config_folder.is_dir() and cfg.latency.hardware_config.is_file()
    assert len(spec.points) == {"rate-tp.yaml": 12, "gpus-200.yaml": 200, "policies.yaml": 24}[name]
