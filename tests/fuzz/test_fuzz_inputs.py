"""Fuzzing the input files: random and mutated hardware configs, model configs, traces (v1 and v2), workload specs,
policy bundles and ground-truth files give a valid run (exit 0) or one clean ``blis: error:`` line (exit 2), never
an internal error, a traceback or a leaked warning.

Each example starts from the valid small inputs of the bad-input corpus (``tests/corpus/bad_inputs/_common``) and
breaks one file: a value replaced by an awkward one (0, -1, 1e300, 1e-300, NaN, a 5,000-digit number, a string, a
list, null, ...), a key dropped or added, or the text itself cut, spliced or sprinkled with odd bytes. The default
profile runs a few dozen examples per input kind (CI); ``pytest -m fuzz --hypothesis-profile long`` many more.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpus"))
from runner import COMMON, run_in  # noqa: E402

pytestmark = pytest.mark.fuzz


def _examples(ci: int) -> int:
    """``ci`` examples in the default profile; the loaded profile's count when it asks for more (``long``)."""
    return max(ci, settings.default.max_examples) if settings.default.max_examples > 100 else ci


def _fuzz(ci: int):
    return settings(max_examples=_examples(ci), deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


AWKWARD = st.sampled_from([
    0, -1, 1, 2, 3, 1.5, -0.0, 1e300, -1e300, 1e-300, 2**63, 2**70, 10**18, float("nan"), float("inf"), True, None,
    "", "abc", "1e308", [], {}, [1, 2], {"a": 1}, "7" * 5000, 65536, 1e7, 0.001,
])
# A number with thousands of digits, written raw into JSON or YAML text (json.dumps cannot make one).
HUGE_DIGITS = "9" * 5000

RF = ("run", "--model", "m", "--model-config-folder", "model", "--hardware-config", "hw.json", "--hardware", "H100",
      "--tp", "1", "--num-requests", "3")
BB = ("run", "--model", "x", "--beta-coeffs", "1,1,1", "--num-requests", "3")
TRACE = ("run", "--model", "x", "--beta-coeffs", "1,1,1", "--workload", "traces", "--workload-traces-filepath")


def _check(files: dict[str, str | bytes], args: tuple[str, ...]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "w"
        shutil.copytree(COMMON, work)
        for rel, content in files.items():
            path = work / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8", errors="surrogatepass")
        rc, out, err = run_in(work, args)
    if os.environ.get("BLIS_FUZZ_LOG"):  # one line per example run (to count a long run's examples)
        with open(os.environ["BLIS_FUZZ_LOG"], "a", encoding="utf-8") as log:
            log.write(f"{args[0]} {rc}\n")
    assert "Traceback" not in err and "internal error" not in err, err
    assert "Warning:" not in err, err  # numpy RuntimeWarnings and the like never reach the user
    if rc == 2:
        lines = err.splitlines()
        assert out == "" and len(lines) == 1 and lines[0].startswith("blis: error: "), err
    else:
        assert rc == 0, (rc, err)
        assert "completed_requests" in out or "MAPE" in out or out, err


# ---------------------------------------------------------------------------------------------------------------------
# Mutations
# ---------------------------------------------------------------------------------------------------------------------


def _paths(value, prefix=()):
    """Every key path of a decoded JSON/YAML document (dict keys and list indices)."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _set(doc, path, value):
    if not path:
        return value
    node = doc
    for p in path[:-1]:
        node = node[p]
    if value is _DROP:
        if isinstance(node, dict):
            node.pop(path[-1], None)
        else:
            node.pop(path[-1])
    else:
        node[path[-1]] = value
    return doc


_DROP = object()


@st.composite
def mutated_doc(draw, doc):
    """``doc`` (a JSON-like structure) with one to three values replaced, dropped or keys added."""
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if action == "drop" and path:
            doc = _set(doc, path, _DROP)
        elif action == "add":
            node = doc
            for p in path:
                node = node[p]
            if isinstance(node, dict):
                node[draw(st.sampled_from(["extra", "Extra_key", "x"]))] = copy.deepcopy(draw(AWKWARD))
        else:
            doc = _set(doc, path, copy.deepcopy(draw(AWKWARD)))
    return doc


@st.composite
def mutated_text(draw, text: str):
    """``text`` cut, spliced, with a line duplicated or removed, or odd characters inserted."""
    kind = draw(st.sampled_from(["cut", "insert", "dup-line", "drop-line", "replace-char", "digits"]))
    if kind == "cut":
        return text[: draw(st.integers(0, len(text)))]
    if kind == "insert":
        at = draw(st.integers(0, len(text)))
        junk = draw(st.sampled_from(["\x00", "\ufeff", '"', ",", "\n", "[", "]", "{", "}", ":", "-", "é", "\t",
                                     "1e999", "NaN", "\r\n", "#", "&a", "*a", "!!python/object:os.system"]))
        return text[:at] + junk + text[at:]
    lines = text.splitlines(keepends=True)
    if kind in ("dup-line", "drop-line") and lines:
        i = draw(st.integers(0, len(lines) - 1))
        return "".join(lines[: i + 1] + lines[i:] if kind == "dup-line" else lines[:i] + lines[i + 1:])
    if kind == "digits":
        digits = [i for i, c in enumerate(text) if c.isdigit()]
        if digits:
            at = draw(st.sampled_from(digits))
            return text[:at] + HUGE_DIGITS + text[at:]
        return text
    if text:
        at = draw(st.integers(0, len(text) - 1))
        return text[:at] + draw(st.characters(codec="utf-8")) + text[at + 1:]
    return text


def _either(draw, text: str, doc, dump):
    if draw(st.booleans()):
        return dump(draw(mutated_doc(doc)))
    return draw(mutated_text(text))


def _json_dump(doc) -> str:
    return json.dumps(doc, allow_nan=True)


def _yaml_dump(doc) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def _common(rel: str) -> str:
    return (COMMON / rel).read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------------------
# One test per input kind
# ---------------------------------------------------------------------------------------------------------------------


@_fuzz(25)
@given(st.data())
def test_hardware_config(data):
    text = _common("hw.json")
    bench = data.draw(st.booleans())
    _check({"hw.json": _either(data.draw, text, json.loads(text), _json_dump)},
           RF + (("--bench-data-path", "bench") if bench else ()))


@_fuzz(25)
@given(st.data())
def test_model_config(data):
    text = _common("model/config.json")
    doc = json.loads(text)
    if data.draw(st.booleans()):  # a MoE model, so that its keys are fuzzed too
        doc.update(num_local_experts=8, num_experts_per_tok=2, moe_intermediate_size=1024)
    bench = data.draw(st.booleans())
    _check({"model/config.json": _either(data.draw, json.dumps(doc), doc, _json_dump)},
           RF + (("--bench-data-path", "bench") if bench else ()))


@_fuzz(15)
@given(st.data())
def test_bench_tables(data):
    rel = data.draw(st.sampled_from(["bench/gemm/h100/data.csv", "bench/mha/prefill/h100/32-8-128.csv",
                                     "bench/mha/decode/h100/32-8-128-tp1.csv"]))
    _check({rel: data.draw(mutated_text(_common(rel)))}, RF + ("--bench-data-path", "bench"))


@st.composite
def csv_cell_mutation(draw, text: str):
    lines = text.splitlines()
    i = draw(st.integers(0, len(lines) - 1))
    import csv
    import io

    row = next(csv.reader([lines[i]]))
    j = draw(st.integers(0, len(row) - 1))
    row[j] = draw(st.sampled_from(["", "-1", "0", "1e13", "1e300", "nan", "abc", "[]", "[-1]", "[1.5]", "[1e300]",
                                   "[" + HUGE_DIGITS + "]", HUGE_DIGITS, "9223372036854775808", "1048577",
                                   "100000000000", "priority", "request_id", "[[1]]", "true", "[true]"]))
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(row)
    lines[i] = out.getvalue()
    return "\n".join(lines) + "\n"


@_fuzz(25)
@given(st.data())
def test_trace_v1(data):
    text = _common("trace.csv")
    mutated = data.draw(st.one_of(csv_cell_mutation(text), mutated_text(text)))
    _check({"trace.csv": mutated}, TRACE + ("trace.csv",))


@_fuzz(25)
@given(st.data())
def test_trace_v2(data):
    csv_text, yaml_text = _common("v2.csv"), _common("v2.yaml")
    files: dict[str, str | bytes] = {}
    if data.draw(st.booleans()):
        files["v2.csv"] = data.draw(st.one_of(csv_cell_mutation(csv_text), mutated_text(csv_text)))
    else:
        files["v2.yaml"] = _either(data.draw, yaml_text, yaml.safe_load(yaml_text), _yaml_dump)
    _check(files, TRACE + ("v2.csv",))


@_fuzz(25)
@given(st.data())
def test_workload_spec(data):
    text = _common("spec.yaml")
    _check({"spec.yaml": _either(data.draw, text, yaml.safe_load(text), _yaml_dump)},
           ("run", "--model", "x", "--beta-coeffs", "1,1,1", "--workload-spec", "spec.yaml"))


@_fuzz(20)
@given(st.data())
def test_policy_bundle(data):
    text = _common("bundle.yaml")
    doc = yaml.safe_load(text)
    if data.draw(st.booleans()):
        doc["routing"] = {"policy": "weighted", "scorers": [{"name": "queue-depth", "weight": 2},
                                                            {"name": "kv-utilization", "weight": 1}]}
    _check({"bundle.yaml": _either(data.draw, _yaml_dump(doc), doc, _yaml_dump)}, BB + ("--policy-config", "bundle.yaml"))


@_fuzz(10)
@given(st.data())
def test_defaults_file(data):
    text = _common("defaults.yaml")
    _check({"defaults.yaml": _either(data.draw, text, yaml.safe_load(text), _yaml_dump)},
           ("run", "--model", "x", "--defaults-filepath", "defaults.yaml", "--num-requests", "3"))


@_fuzz(10)
@given(st.data())
def test_ground_truth(data):
    text = _common("gt.json")
    _check({"gt.json": _either(data.draw, text, json.loads(text), _json_dump)},
           ("evaluate", "--ground-truth", "gt.json", "--jobs", "1", "--quiet", "--requests-per-point", "20"))
