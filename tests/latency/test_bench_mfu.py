"""``blis bench-mfu`` without a GPU: its shape grid, CSV writing with a fake timer, and the no-GPU error."""

from __future__ import annotations

import contextlib
import csv
import sys
import types

import pytest
from mfu_fixtures import DATA, decode_latency_us, gemm_latency_us, make_step, prefill_latency_us

from blis_sim import cli, logging_setup
from blis_sim.latency.hardware import load_hardware
from blis_sim.latency.hf_config import load_model_config
from blis_sim.latency.mfu.bench import DEFAULT_SHAPES, BenchGrid, TorchTimer, gpu_folder_name, run_bench
from blis_sim.latency.mfu.fitted import load_packaged_efficiency
from blis_sim.latency.mfu.tables import MFUDatabase
from blis_sim.latency.roofline_v2 import RooflineV2


class FakeTimer:
    """Roofline-shaped latencies (physically possible on an H100) and a record of what was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def gemm_us(self, m, k, n):
        self.calls.append(("gemm", m, k, n))
        return gemm_latency_us(m, k, n)

    def prefill_us(self, heads, kv_heads, head_dim, seq_len):
        self.calls.append(("prefill", heads, kv_heads, head_dim, seq_len))
        return prefill_latency_us(heads, head_dim, seq_len)

    def decode_us(self, heads, kv_heads, head_dim, batch, kv_len):
        self.calls.append(("decode", heads, kv_heads, head_dim, batch, kv_len))
        return decode_latency_us(kv_heads, head_dim, batch, kv_len)


def read(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


# ---------------------------------------------------------------- grid
def test_default_grid_covers_the_packaged_models():
    g = BenchGrid()
    assert len(g.gemm_cells()) == len(g.gemm_m) * len(g.gemm_k) * len(g.gemm_n)
    assert g.gemm_cells()[0] == (1, 512, 512) and g.gemm_cells()[len(g.gemm_m)] == (1, 512, 1024)
    shapes = set()
    for folder in (DATA / "model_configs").iterdir():
        m = load_model_config(folder)
        if m.is_mla:  # multi-head latent attention: no (heads, KV heads, head_dim) attention table to measure
            continue
        shapes.add((m.num_heads, m.num_kv_heads, m.head_dim or m.hidden_size // m.num_heads))
    assert shapes <= set(g.shapes)
    # every fused GEMM of llama-3.1-8b at TP 1-8 lies inside the (k, n) box
    hw, eff = load_hardware(DATA / "hardware_config_handset.json", "H100"), load_packaged_efficiency("H100")
    llama = load_model_config(DATA / "model_configs" / "llama-3.1-8b-instruct")
    for tp in (1, 2, 4, 8):
        for _, k, n in RooflineV2.fitted(llama, hw, tp, eff).shapes.gemm_list():
            assert g.gemm_k[0] <= k <= g.gemm_k[-1] and g.gemm_n[0] <= n <= g.gemm_n[-1], (tp, k, n)


def test_tp_degrees_follow_vllm_sharding():
    g = BenchGrid()
    assert g.tp_degrees(28, 4) == [1, 2, 4]  # 28 heads do not split over 8 GPUs
    assert g.tp_degrees(40, 8) == [1, 2, 4, 8]
    assert g.tp_degrees(12, 2) == [1, 2, 4]  # 2 KV heads replicated over 4 GPUs
    assert g.tp_degrees(32, 32) == [1, 2, 4, 8]


def test_decode_cells_skip_what_does_not_fit():
    g = BenchGrid()
    full = len(g.decode_batch) * len(g.decode_kv)
    small = g.decode_cells(32, 8, 128, 8)  # 1 KV head per GPU: 512 B per token
    big = g.decode_cells(40, 40, 128, 1)  # 40 KV heads: 20 KiB per token
    assert len(big) < len(small) < full
    assert (512, 131072) not in big and (1, 131072) in big
    assert all(b * kv * 2 * 40 * 128 * 2 <= g.max_kv_bytes for b, kv in big)


def test_gpu_folder_from_device_name():
    assert gpu_folder_name("NVIDIA H100 80GB HBM3") == "h100"
    assert gpu_folder_name("NVIDIA A100-SXM4-80GB") == "a100"
    assert gpu_folder_name("NVIDIA GeForce RTX 4090") == "rtx"
    assert gpu_folder_name("") == "gpu"


# ---------------------------------------------------------------- writing
def test_run_bench_writes_the_layout_and_it_loads_back(tmp_path):
    grid = BenchGrid.quick()
    timer, ticks = FakeTimer(), []
    result = run_bench(timer, grid, tmp_path, "h100", 989.5, progress=lambda *a: ticks.append(a))
    rel = sorted(str(p.relative_to(tmp_path)) for p in result.files)
    assert rel == ["gemm/h100/data.csv", "mha/decode/h100/32-8-128-tp1.csv", "mha/decode/h100/32-8-128-tp2.csv",
                   "mha/prefill/h100/32-8-128.csv"]
    gemm = read(tmp_path / "gemm" / "h100" / "data.csv")
    assert gemm[0] == ["m", "k", "n", "latency_us", "mfu", "dtype"]
    assert len(gemm) - 1 == len(grid.gemm_cells())
    m, k, n, lat, mfu, dtype = gemm[1]
    assert (int(m), int(k), int(n), dtype) == (1, 2048, 2048, "bf16")
    assert float(lat) == round(gemm_latency_us(1, 2048, 2048), 3)
    assert float(mfu) == pytest.approx(2 * 2048 * 2048 / (float(lat) * 1e-6 * 989.5e12), abs=1e-6)
    decode = read(tmp_path / "mha" / "decode" / "h100" / "32-8-128-tp2.csv")
    assert decode[0] == ["dtype", "kv_dtype", "batch_size", "kv_len", "latency_us", "mfu"] and len(decode) == 10
    assert ("decode", 16, 4, 128, 128, 16384) in timer.calls  # TP 2: 16 query heads, 4 KV heads per GPU
    assert read(tmp_path / "mha" / "prefill" / "h100" / "32-8-128.csv")[0] == ["dtype", "seq_len", "latency_us", "mfu"]
    assert result.cells == len(timer.calls)
    # progress: every table starts at 0 and ends complete
    finals = {label: (done, total) for label, done, total in ticks}
    assert set(finals) == set(rel) and all(d == t for d, t in finals.values())
    # the tables are what --bench-data-path reads, and roofline v2 runs on them
    db = MFUDatabase.load(tmp_path, "H100", 989.5, 3.35)
    assert db.gemm.dtype == "bf16" and db.shapes() == ["32-8-128"]
    hw = load_hardware(DATA / "hardware_config_handset.json", "H100")
    model = RooflineV2.from_tables(load_model_config(DATA / "model_configs" / "llama-3.1-8b-instruct"), hw, 2, db)
    assert model.step_time(make_step([(0, 100)], [500] * 8)) > 0


def test_run_bench_replaces_files_atomically_and_rejects_bad_folder(tmp_path):
    grid = BenchGrid.quick()
    run_bench(FakeTimer(), grid, tmp_path, "h100", 989.5)
    first = (tmp_path / "gemm" / "h100" / "data.csv").read_text()
    run_bench(FakeTimer(), grid, tmp_path, "h100", 989.5)
    assert (tmp_path / "gemm" / "h100" / "data.csv").read_text() == first
    assert not [p for p in tmp_path.rglob("*.tmp")]
    from blis_sim.errors import InputError

    with pytest.raises(InputError, match="--gpu-folder '../x' must be a plain folder name"):
        run_bench(FakeTimer(), grid, tmp_path, "../x", 989.5)


# ---------------------------------------------------------------- no GPU
def _bench_cli(capsys, *args):
    rc = cli.run_cli(["bench-mfu", *args], prog_name="blis")
    logging_setup.reset()
    out, err = capsys.readouterr()
    return rc, out, err


def test_without_torch_exits_2_no_cuda_device(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    rc, out, err = _bench_cli(capsys, "--output", str(tmp_path / "out"))
    assert rc == 2 and out == ""
    assert err.startswith("blis: error: no CUDA device: ") and "pip install 'blis-sim[gpu]'" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "out").exists()


def test_without_a_gpu_exits_2_no_cuda_device(tmp_path, capsys, monkeypatch):
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: False))
    monkeypatch.setitem(sys.modules, "torch", fake)
    rc, out, err = _bench_cli(capsys, "--output", str(tmp_path / "out"))
    assert (rc, out) == (2, "")
    assert err == ("blis: error: no CUDA device: bench-mfu measures kernels on the local GPU "
                   "(torch.cuda.is_available() is False)\n")
    with pytest.raises(Exception, match="no CUDA device"):
        TorchTimer.create()


def test_output_is_required(capsys):
    rc, out, err = _bench_cli(capsys)
    assert rc == 2 and err == "blis: error: --output is required (see blis bench-mfu --help)\n"


# ---------------------------------------------------------------- the GPU timer, on a fake CUDA clock


class FakeCuda:
    """A virtual GPU clock: an eager kernel call costs PyTorch's dispatch gap plus the kernel, a graph replay only
    the kernels it captured. ``capturable=False`` makes capture fail as some kernels do."""

    def __init__(self, dispatch_us: float, capturable: bool = True) -> None:
        self.now_us, self.dispatch_us, self.capturable = 0.0, dispatch_us, capturable
        self.capturing: list | None = None
        self.launched: list = []

    def kernel(self, cost_us: float, tag: object = None) -> None:
        if self.capturing is not None:
            self.capturing.append((cost_us, tag))
        else:
            self.now_us += self.dispatch_us + cost_us
            self.launched.append(tag)

    def torch(self) -> types.SimpleNamespace:
        gpu = self

        class Event:
            def __init__(self, enable_timing):
                self.t = None

            def record(self):
                self.t = gpu.now_us

            def elapsed_time(self, other):
                return (other.t - self.t) / 1000.0

        class Graph:
            def __init__(self):
                self.kernels = []

            def replay(self):
                for cost, tag in self.kernels:
                    gpu.now_us += cost
                    gpu.launched.append(tag)

        class Capture:
            def __init__(self, graph):
                self.graph = graph

            def __enter__(self):
                gpu.capturing = self.graph.kernels

            def __exit__(self, *exc):
                gpu.capturing = None
                if not gpu.capturable:
                    raise RuntimeError("operation not permitted when stream is capturing")

        stream = types.SimpleNamespace(wait_stream=lambda other: None)
        cuda = types.SimpleNamespace(
            Event=Event, CUDAGraph=Graph, graph=Capture, Stream=lambda: stream, current_stream=lambda: stream,
            stream=lambda s: contextlib.nullcontext(), synchronize=lambda: None,
            get_device_name=lambda i: "NVIDIA H100 80GB HBM3")
        return types.SimpleNamespace(cuda=cuda, device=lambda name: name, bfloat16="bf16")


def test_graph_reps_cover_the_weight_copies_and_about_a_millisecond():
    from blis_sim.latency.mfu.bench import graph_reps

    assert graph_reps(first_us=30.0, copies=1) == 33  # 1000 us of eager time
    assert graph_reps(first_us=2.0, copies=1) == 64  # capped
    assert graph_reps(first_us=30.0, copies=40) == 40  # every weight copy once, so none stays in L2
    assert graph_reps(first_us=5000.0, copies=1) == 1


def test_timer_reports_the_kernel_not_the_dispatch_gap():
    gpu = FakeCuda(dispatch_us=25.0)
    timer = TorchTimer(gpu.torch(), warmup=3, iters=10)
    t = timer._time_us(lambda i: gpu.kernel(4.0, tag=i % 3), copies=3)
    assert t == pytest.approx(4.0) and timer.eager_fallbacks == 0
    # 3 warm-ups and one timed eager call, then graphs of graph_reps(29 us, 3) = 34 calls rotating over 3 copies
    assert gpu.launched[4:4 + 34] == [i % 3 for i in range(34)]


def test_timer_falls_back_to_back_to_back_calls_when_capture_fails():
    gpu = FakeCuda(dispatch_us=25.0, capturable=False)
    timer = TorchTimer(gpu.torch(), warmup=3, iters=10)
    assert timer._time_us(lambda i: gpu.kernel(100.0)) == pytest.approx(125.0)
    assert timer.eager_fallbacks == 1


# ---------------------------------------------------------------- the tables bench-mfu measured on an H100

MEASURED = DATA.parents[2] / "benchmarks" / "gpu" / "h100-bf16"


def test_measured_h100_tables_load_as_bf16_and_cover_the_packaged_models(caplog):
    """The tables of benchmarks/gpu/h100-bf16 (blis bench-mfu on an H100, CUDA graphs): the loader's physical
    checks accept every row as BF16, and llama-3.1-8b at TP 1-8 needs no extrapolated GEMM or borrowed shape."""
    db = MFUDatabase.load(MEASURED, "H100", 989.5, 3.35)
    assert db.gemm.dtype == "bf16" and len(db.shapes()) == len(DEFAULT_SHAPES)
    hw = load_hardware(DATA / "hardware_config_handset.json", "H100")
    llama = load_model_config(DATA / "model_configs" / "llama-3.1-8b-instruct")
    caplog.set_level("INFO", logger="blis_sim")
    steps = {tp: RooflineV2.from_tables(llama, hw, tp, db).step_time(make_step([], [1024])) for tp in (1, 2, 4, 8)}
    assert not [r for r in caplog.records if "roofline-v2" in r.getMessage()]
    # one decode of 1,024 tokens reads the 16 GB of weights: at least their HBM time, and faster with more GPUs
    assert steps[1] > 16.06e9 / 3.35e12 * 1e6
    assert steps[1] > steps[2] > steps[4] > steps[8]


def test_measured_small_kernels_are_gpu_time_not_dispatch():
    """Timed from CUDA graphs: a 512x512 GEMM takes a few microseconds (launched one by one from PyTorch, 30)."""
    rows = read(MEASURED / "gemm" / "h100" / "data.csv")[1:]
    small = [float(lat) for m, k, n, lat, *_ in rows if (k, n) == ("512", "512")]
    assert len(small) == len(BenchGrid().gemm_m) and max(small) < 10.0
