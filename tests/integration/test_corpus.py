"""Every malformed input of ``tests/corpus/bad_inputs`` gives exit 2, exactly its expected one-line error on stderr,
nothing on stdout and no new file (no results file, no half-written output)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpus"))
from runner import COMMON, cases, files_under, run_in, stage  # noqa: E402

CASES = cases()


def test_the_corpus_covers_every_input_kind():
    kinds = Counter(c.kind for c in CASES)
    assert len(CASES) >= 90, len(CASES)
    expected = {"cli", "hardware-config", "model-config", "bench-tables", "defaults-file", "trace-v1", "trace-v2",
                "workload-spec", "policy-bundle", "ground-truth", "sweep-config"}
    assert expected <= set(kinds), expected - set(kinds)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_its_one_line_error(case, tmp_path):
    work = stage(case, tmp_path / "w")
    before = files_under(work)
    rc, out, err = run_in(work, case.args)
    assert err == case.error + "\n", err
    assert rc == 2 and out == ""
    assert files_under(work) == before  # no output file, nothing half written


@pytest.mark.parametrize("args", [
    ("run", "--model", "x", "--beta-coeffs", "1,1,1", "--num-requests", "2"),
    ("run", "--model", "m", "--model-config-folder", "model", "--hardware-config", "hw.json", "--hardware", "H100",
     "--tp", "1", "--num-requests", "2"),
    ("run", "--model", "m", "--model-config-folder", "model", "--hardware-config", "hw.json", "--hardware", "H100",
     "--tp", "1", "--num-requests", "2", "--bench-data-path", "bench"),
    ("run", "--model", "x", "--defaults-filepath", "defaults.yaml", "--num-requests", "2"),
    ("run", "--model", "x", "--beta-coeffs", "1,1,1", "--workload", "traces", "--workload-traces-filepath", "trace.csv"),
    ("run", "--model", "x", "--beta-coeffs", "1,1,1", "--workload", "traces", "--workload-traces-filepath", "v2.csv"),
    ("run", "--model", "x", "--beta-coeffs", "1,1,1", "--workload-spec", "spec.yaml"),
    ("run", "--model", "x", "--beta-coeffs", "1,1,1", "--num-requests", "2", "--policy-config", "bundle.yaml"),
], ids=["blackbox", "roofline-v1", "roofline-v2", "defaults", "trace-v1", "trace-v2", "spec", "bundle"])
def test_the_common_inputs_are_valid(args, tmp_path):
    """The cases break one thing each in otherwise valid inputs: those inputs run cleanly as they are."""
    import shutil

    work = tmp_path / "w"
    shutil.copytree(COMMON, work)
    rc, out, err = run_in(work, args)
    assert rc == 0, err
    assert "completed_requests" in out and "error" not in err and "Warning" not in err, err
