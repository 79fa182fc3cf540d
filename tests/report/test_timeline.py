"""The timeline export (report/timeline.py) against the step log of real runs, its sampling, determinism, the CLI
flag and the ``blis timeline --html`` page (report/timeline_html.py), opened in headless Chromium when installed."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections import defaultdict

import pytest
from browser import chromium

from blis_sim import SimulationConfig, cli, logging_setup
from blis_sim.api import execute, prepare
from blis_sim.engine.observer import MultiObserver, Observer, combine
from blis_sim.report.timeline import REQUEST_LIMIT, STEP_LIMIT, TimelineRecorder, render_trace, write_timeline
from blis_sim.report.timeline_html import load_timeline, render_html

MODEL = {"model": "meta-llama/llama-3.1-8b-instruct", "hardware": "H100", "tp": 1,
         "vllm_version": "vllm/vllm-openai:v0.8.4"}
RUN_FLAGS = ["--model", MODEL["model"], "--hardware", "H100", "--tp", "1", "--vllm-version", MODEL["vllm_version"],
             "--workload", "chatbot", "--rate", "60", "--num-requests", "40", "--num-instances", "2",
             "--total-kv-blocks", "150", "--quiet"]


def _cfg(asynchronous=False, **output):
    # tight KV: preemptions happen; two instances: two tracks
    return SimulationConfig(
        latency=MODEL, engine={"total_kv_blocks": 150, "async_scheduling": asynchronous},
        cluster={"num_instances": 2}, workload={"workload": "chatbot", "rate": 60, "num_requests": 40},
        output=output,
    )


class StepLog(Observer):
    """What the engine told the observer, copied when told."""

    def __init__(self):
        self.steps = []  # (instance, number on the instance, start, end, args dict)
        self.preemptions = defaultdict(list)  # request index -> [(instance, tick)]
        self.done = {}  # request index -> (instance, arrival, first scheduled, first token, finish, id)
        self.counts = defaultdict(int)

    def on_step(self, instance, step, queue_depth, kv_used):
        n = self.counts[instance]
        self.counts[instance] += 1
        args = {"prefill_tokens": step.num_prefill_tokens, "decode_requests": step.num_decodes,
                "scheduled_requests": len(step.requests) + step.cohort_size, "admitted": step.num_admitted,
                "preempted": len(step.preempted), "kv_blocks_used": kv_used, "queue_depth": queue_depth}
        self.steps.append((instance, n, step.start, step.end, args))
        for r in step.preempted:
            self.preemptions[r.index].append((instance, step.start))

    def on_completion(self, instance, req, now):
        self.done[req.index] = (instance, req.arrival, req.first_scheduled, req.first_token, now, req.id)


def _record(cfg, **limits):
    prepared = prepare(cfg)
    log = StepLog()
    timeline = TimelineRecorder(prepared.resolved.total_kv_blocks, prepared.resolved.kind,
                                cfg.cluster.num_instances, **limits)
    results = execute(prepared, observer=MultiObserver([log, timeline]))
    return log, timeline, results, prepared


@pytest.fixture(scope="module", params=[False, True], ids=["sync", "async"])
def recorded(request):
    return _record(_cfg(request.param))


def _by_phase(events, ph, cat=None):
    return [e for e in events if e["ph"] == ph and (cat is None or e.get("cat") == cat)]


def test_step_slices_and_counters_equal_the_step_log(recorded):
    log, timeline, _, prepared = recorded
    doc = timeline.trace()
    events = doc["traceEvents"]
    total = prepared.resolved.total_kv_blocks
    assert log.steps and sum(1 for s in log.steps if s[4]["preempted"]) > 0  # the run preempts
    slices = _by_phase(events, "X", "step")
    assert len(slices) == len(log.steps)
    expected = sorted(log.steps, key=lambda s: (s[0], s[1]))
    queue = [e for e in _by_phase(events, "C") if e["name"] == "queue_depth"]
    kv = [e for e in _by_phase(events, "C") if e["name"] == "kv_utilization"]
    for ev, q, u, (inst, _, start, end, args) in zip(slices, queue, kv, expected):
        assert (ev["pid"], ev["tid"], ev["ts"], ev["dur"]) == (inst, 0, start, end - start)
        assert {k: v for k, v in ev["args"].items() if k != "duration"} == args
        assert ev["args"]["duration"] == prepared.resolved.kind == "blackbox"
        kind = "mixed" if args["prefill_tokens"] and args["decode_requests"] else (
            "prefill" if args["prefill_tokens"] else "decode")
        assert ev["name"] == kind
        assert (q["pid"], q["ts"], q["args"]) == (inst, start, {"waiting": args["queue_depth"]})
        assert (u["pid"], u["ts"]) == (inst, start)
        assert u["args"]["used"] == pytest.approx(args["kv_blocks_used"] / total, abs=1e-6)
    names = {e["pid"]: e["args"]["name"] for e in _by_phase(events, "M") if e["name"] == "process_name"}
    assert names == {0: "instance_0", 1: "instance_1"}
    assert doc["displayTimeUnit"] == "ms" and doc["otherData"]["sampled"] is False
    assert doc["otherData"]["steps"] == len(log.steps)


def test_every_completed_request_has_its_lifecycle_in_order(recorded):
    log, timeline, results, _ = recorded
    events = [e for e in timeline.trace()["traceEvents"] if e.get("cat") == "request"]
    per_request = defaultdict(list)
    for e in events:
        per_request[e["id"]].append(e)
    assert set(per_request) == set(log.done) and len(log.done) == 40
    records = {r["requestID"]: r for r in results.requests}
    for index, (inst, arrival, scheduled, first_token, finish, rid) in log.done.items():
        evs = per_request[index]
        marks = [e["ts"] for e in evs if e["ph"] == "n"]
        assert marks == [t for _, t in log.preemptions.get(index, [])]
        assert all(e["pid"] == inst for e in evs)
        spans = [(e["ph"], e["name"], e["ts"]) for e in evs if e["ph"] != "n"]
        assert spans == [
            ("b", rid, arrival), ("b", "queued", arrival), ("e", "queued", scheduled),
            ("b", "prefill", scheduled), ("e", "prefill", first_token),
            ("b", "decode", first_token), ("e", "decode", finish), ("e", rid, finish),
        ]
        assert arrival <= scheduled <= first_token <= finish
        assert all(scheduled <= t <= finish for t in marks)
        rec = records[rid]  # the per-request records of the results file agree
        assert rec["handled_by"] == f"instance_{inst}"
        assert rec["scheduling_delay_ms"] == pytest.approx((scheduled - arrival) / 1000)
        assert rec["arrived_at"] == pytest.approx(arrival / 1e6)
    instants = _by_phase(timeline.trace()["traceEvents"], "i", "preemption")
    assert sorted((e["pid"], e["ts"], e["args"]["index"]) for e in instants) == sorted(
        (inst, t, index) for index, marks in log.preemptions.items() for inst, t in marks)


def test_the_file_from_the_api_is_deterministic_and_valid_json(tmp_path):
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for p in paths:
        execute(prepare(_cfg(timeline_out=p)))
    data = [p.read_bytes() for p in paths]
    assert data[0] == data[1]
    doc = json.loads(data[0])
    _, timeline, _, _ = _record(_cfg())
    assert render_trace(timeline.trace()).encode() == data[0]  # the flag and the observer give the same file
    assert doc["otherData"]["format"] == "blis-sim timeline"
    assert not list(tmp_path.glob(".*.tmp"))


def test_sampling_keeps_a_deterministic_documented_subset(caplog, tmp_path):
    log, timeline, _, _ = _record(_cfg(), step_limit=50, request_limit=7)
    k, m = timeline.step_stride, timeline.request_stride
    assert k > 1 and m > 1 and k & (k - 1) == 0 and m & (m - 1) == 0  # powers of two
    kept = [(s[0], s[2]) for s in sorted(log.steps, key=lambda s: (s[0], s[1])) if s[1] % k == 0]
    assert 0 < len(kept) <= 50 < len([s for s in log.steps if s[1] % (k // 2) == 0])  # the smallest such stride
    doc = timeline.trace()
    slices = _by_phase(doc["traceEvents"], "X", "step")
    assert [(e["pid"], e["ts"]) for e in slices] == kept
    assert len(_by_phase(doc["traceEvents"], "C")) == 2 * len(kept)
    requests = {e["id"] for e in doc["traceEvents"] if e.get("cat") == "request"}
    assert requests == {i for i in log.done if i % m == 0} and len(requests) <= 7
    assert {e["args"]["index"] for e in _by_phase(doc["traceEvents"], "i")} <= requests | {
        i for i in log.preemptions if i % m == 0}
    meta = doc["otherData"]
    assert meta["sampled"] is True and meta["sampling"]["step_stride"] == k
    assert meta["sampling"]["request_stride"] == m and meta["steps_kept"] == len(kept)
    assert f"1 step in {k} on each instance (numbers 0, {k}, {2 * k}, ...: " in meta["sampling"]["description"]
    with caplog.at_level(logging.WARNING, logger="blis_sim"):
        write_timeline(timeline, tmp_path / "s.json")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "the timeline was sampled" in warnings[0]
    assert f"1 step in {k} on each" in warnings[0]
    again = _record(_cfg(), step_limit=50, request_limit=7)[1]
    assert render_trace(again.trace()) == render_trace(doc)
    assert STEP_LIMIT == 200_000 and REQUEST_LIMIT == 50_000


def test_an_interrupted_run_leaves_no_file(tmp_path):
    class Interrupt(Observer):
        def on_step(self, instance, step, queue_depth, kv_used):
            if step.start > 100_000:
                raise KeyboardInterrupt

    target = tmp_path / "t.json"
    with pytest.raises(KeyboardInterrupt):
        execute(prepare(_cfg(timeline_out=target)), observer=Interrupt())
    assert list(tmp_path.iterdir()) == []


def test_combine():
    a, b = Observer(), Observer()
    assert combine(None, None) is None and combine(a, None) is a
    both = combine(a, b)
    assert isinstance(both, MultiObserver) and both.observers == [a, b]


# ------------------------------------------------------------------------------------------------------------- CLI
@pytest.fixture
def blis(capsys):
    def _invoke(*args):
        capsys.readouterr()
        rc = cli.run_cli(list(args), prog_name="blis")
        out = capsys.readouterr()
        return rc, out.out, out.err

    yield _invoke
    logging_setup.reset()


@pytest.fixture(scope="module")
def timeline_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tl") / "run.json"
    rc = cli.run_cli(["run", *RUN_FLAGS, "--timeline-out", str(path)], prog_name="blis")
    logging_setup.reset()
    assert rc == 0 and path.exists()
    return path


def test_cli_flag_writes_the_timeline(timeline_file):
    doc = json.loads(timeline_file.read_text())
    assert doc["otherData"]["num_instances"] == 2 and doc["otherData"]["completed_requests"] == 40


@pytest.mark.parametrize(("where", "message"), [
    ("missing/t.json", "--timeline-out {p}: directory '{d}' does not exist"),
    ("", "--timeline-out {p}: is a directory, expected a file path"),
])
def test_cli_flag_refuses_an_unwritable_path_before_the_run(blis, tmp_path, where, message):
    p = tmp_path / where if where else tmp_path
    rc, out, err = blis("run", *RUN_FLAGS, "--timeline-out", str(p))
    assert rc == 2 and out == ""
    assert err.splitlines() == [f"blis: error: {message.format(p=p, d=p.parent)}"]


def test_cli_flag_refuses_a_directory_name(blis, tmp_path):
    rc, _, err = blis("run", *RUN_FLAGS, "--timeline-out", f"{tmp_path}/")
    assert rc == 2 and err.startswith("blis: error: --timeline-out") and "not a directory" in err
    assert len(err.splitlines()) == 1


def _self_contained(page: str) -> None:
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "@import" not in page
    assert "default-src 'none'" in page


def test_cli_timeline_html(blis, timeline_file, tmp_path):
    out = tmp_path / "t.html"
    rc, stdout, err = blis("timeline", str(timeline_file), "--html", str(out))
    assert rc == 0, err
    assert stdout.startswith(f"wrote {out} (2 instance(s), ")
    page = out.read_text()
    _self_contained(page)
    assert "instance_0" in page and "instance_1" in page and "<canvas" in page
    rc, _, _ = blis("timeline", str(timeline_file), "--html", str(tmp_path / "u.html"))
    assert (tmp_path / "u.html").read_bytes() == out.read_bytes()  # deterministic


def test_the_page_embeds_the_file_content(timeline_file):
    data = load_timeline(timeline_file)
    doc = json.loads(timeline_file.read_text())
    slices = _by_phase(doc["traceEvents"], "X", "step")
    assert sum(len(i["steps"]) for i in data["instances"]) == len(slices)
    page = render_html(data, "x</script><b>")
    payload = re.search(r'<script id="timeline-data" type="application/json">(.*?)</script>', page, re.S).group(1)
    embedded = json.loads(payload)
    assert embedded["instances"][0]["ts"] == [e["ts"] for e in slices if e["pid"] == 0]
    assert "x</script><b>" not in page  # the title is escaped


@pytest.mark.parametrize(("content", "message"), [
    (None, "{f}: no such file"),
    ("dir", "{f}: is a directory, expected a timeline file (.json)"),
    ("{", "{f}: not valid JSON (line 1 column 2: Expecting property name enclosed in double quotes)"),
    ('{"traceEvents": [{"ph": "X", "cat": "step", "pid": 0, "ts": NaN, "dur": 1}]}',
     "{f}: not valid JSON (NaN is not a JSON number)"),
    ("[1, 2]", "{f}: event 0: not an object with a \"ph\" string"),
    ('{"events": []}', '{f}: not a trace-event file: no "traceEvents" list'),
    ('"text"', '{f}: not a trace-event file: expected a JSON object with "traceEvents"'),
    ('{"traceEvents": []}', '{f}: no step slices ("ph": "X", "cat": "step"): not a timeline written by blis run '
                            '--timeline-out'),
    ('{"traceEvents": [{"ph": "X", "cat": "step", "pid": 0, "ts": 5, "dur": -1}]}',
     '{f}: event 0: "dur" must be a finite number >= 0, got -1'),
    ('{"traceEvents": [{"ph": "X", "cat": "step", "pid": 0, "ts": "5", "dur": 1}]}',
     '{f}: event 0: "ts" must be a finite number (microseconds), got "5"'),
    ('{"traceEvents": [{"ph": "X", "cat": "step", "pid": -2, "ts": 5, "dur": 1}]}',
     '{f}: event 0: "pid" must be an integer >= 0, got -2'),
    ('{"traceEvents": [{"ph": "X", "cat": "step", "pid": 0, "ts": 5, "dur": 1, "args": {"queue_depth": 1.5}}]}',
     '{f}: event 0: args.queue_depth must be an integer >= 0, got 1.5'),
    ('{"traceEvents": [{"ph": "C", "name": "queue_depth", "pid": 0, "ts": 5, "args": {}}]}',
     '{f}: event 0: a queue_depth counter needs args.waiting (a finite number)'),
])
def test_cli_timeline_bad_input(blis, tmp_path, content, message):
    f = tmp_path / "in.json"
    if content == "dir":
        f.mkdir()
    elif content is not None:
        f.write_text(content)
    out = tmp_path / "out.html"
    rc, stdout, err = blis("timeline", str(f), "--html", str(out))
    assert (rc, stdout) == (2, "")
    assert err.splitlines() == [f"blis: error: {message.format(f=f)}"]
    assert not out.exists()


def test_cli_timeline_bad_output(blis, timeline_file, tmp_path):
    rc, _, err = blis("timeline", str(timeline_file), "--html", str(tmp_path / "no" / "x.html"))
    assert rc == 2 and err.splitlines() == [
        f"blis: error: --html {tmp_path / 'no' / 'x.html'}: directory '{tmp_path / 'no'}' does not exist"]


@pytest.mark.skipif(chromium() is None, reason="no headless browser: apt-get install chromium to run this check")
def test_a_real_browser_renders_the_page(timeline_file, tmp_path):
    page = tmp_path / "t.html"
    assert cli.run_cli(["timeline", str(timeline_file), "--html", str(page)], prog_name="blis") == 0
    logging_setup.reset()
    base = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
            f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,900"]
    proc = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    body = re.search(r"<body[^>]*>", proc.stdout).group(0)
    assert 'data-rendered="6"' in body  # 2 instances x (steps, queue depth, KV utilisation) lanes drawn
    drawn = int(re.search(r'data-marks-drawn="(\d+)"', body).group(1))
    assert drawn > 100
    assert "showing " in proc.stdout  # the script wrote the visible range
    shot = tmp_path / "shot.png"
    proc = subprocess.run([*base, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    assert proc.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000  # not a blank page (a blank 1400x900 PNG is a few KB)
