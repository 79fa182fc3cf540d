"""Loading the --bench-data-path tables (ROOFLINE.md §4.1): good tables, every kind of malformed table, GPU folder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from mfu_fixtures import GEMM_K, GEMM_M, GEMM_N, gemm_rows, write_tables

from blis_sim.errors import InputError
from blis_sim.latency.mfu.tables import MFUDatabase

GEMM = Path("gemm") / "h100" / "data.csv"
PREFILL = Path("mha") / "prefill" / "h100" / "32-8-128.csv"
DECODE = Path("mha") / "decode" / "h100" / "32-8-128-tp1.csv"


def load(root: Path, gpu: str = "H100") -> MFUDatabase:
    return MFUDatabase.load(root, gpu, 989.5, 3.35)


@pytest.fixture
def tables(tmp_path) -> Path:
    return write_tables(tmp_path / "bench")


def rewrite(root: Path, rel: Path, edit) -> None:
    path = root / rel
    path.write_text(edit(path.read_text()))


def replace_line(root: Path, rel: Path, line: int, text: str) -> None:
    def edit(content: str) -> str:
        lines = content.splitlines()
        lines[line - 1] = text
        return "\n".join(lines) + "\n"

    rewrite(root, rel, edit)


def error(root: Path, gpu: str = "H100") -> str:
    with pytest.raises(InputError) as e:
        load(root, gpu)
    message = str(e.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- good
def test_good_tables_load(tables):
    db = load(tables)
    assert db.gpu_folder == "h100"  # --hardware H100 finds the lower-case folder (§9 D18)
    g = db.gemm
    assert g.dtype == "bf16" and g.latency_us.shape == (len(GEMM_K), len(GEMM_N), len(GEMM_M))
    assert tuple(g.ms) == GEMM_M and tuple(g.ks) == GEMM_K and tuple(g.ns) == GEMM_N
    assert db.shapes() == ["32-8-128"]
    d = db.decode_table("32-8-128", 1, 2.0)
    assert d is not None and d.kv_dtype == "bf16" and d.num_measured == 8 and np.isnan(d.latency_us[-1, -1])
    assert db.decode_table("32-8-128", 4, 2.0) is None


def test_gpu_folder_exact_name_and_case_insensitive(tmp_path):
    root = write_tables(tmp_path / "b", gpu="H100")
    assert load(root, "h100").gpu_folder == "H100"
    assert load(root, "H100").gpu_folder == "H100"


def test_blank_lines_and_extra_columns_are_fine(tables):
    before = load(tables)
    rewrite(tables, GEMM, lambda t: t.replace("\n", "\n\n", 3))

    def add_note_column(text: str) -> str:
        lines = text.splitlines()
        lines[0] += ",note"
        lines[2] += ",re-measured"  # one row fills the extra column, the others leave it out
        return "\n".join(lines) + "\n"

    rewrite(tables, PREFILL, add_note_column)
    after = load(tables)
    # Blank lines and the unknown column change nothing that was parsed.
    assert after.gemm.latency_us.shape == before.gemm.latency_us.shape == (len(GEMM_K), len(GEMM_N), len(GEMM_M))
    assert np.array_equal(after.gemm.latency_us, before.gemm.latency_us)
    assert after.shapes() == before.shapes() == ["32-8-128"]
    p0, p1 = before.prefill["32-8-128"], after.prefill["32-8-128"]
    assert len(p1.seq_len) == len(p0.seq_len) > 2
    assert np.array_equal(p1.seq_len, p0.seq_len) and np.array_equal(p1.latency_us, p0.latency_us)


def test_gemm_dtype_column_is_used(tmp_path):
    root = write_tables(tmp_path / "b")
    (root / GEMM).write_text("m,k,n,latency_us,mfu,dtype\n" + "\n".join(gemm_rows(dtype_column=True)) + "\n")
    assert load(root).gemm.dtype == "bf16"
    rewrite(root, GEMM, lambda t: t.replace(",bf16\n", ",int4\n", 1))
    assert re.fullmatch(r".*gemm/h100/data.csv: line 2: column dtype: 'int4' is not a GEMM dtype .*", error(root))


def test_gemm_dtype_inferred_fp8_when_faster_than_bf16(tables):
    # Halve every latency: the large GEMMs now beat the BF16 roofline but not the FP8 one (twice the peak).
    def halve(text: str) -> str:
        out = [text.splitlines()[0]]
        for row in text.splitlines()[1:]:
            m, k, n, t, mfu = row.split(",")
            out.append(f"{m},{k},{n},{float(t) / 2:.3f},{min(1.0, float(mfu)):.3f}")
        return "\n".join(out) + "\n"

    rewrite(tables, GEMM, halve)
    assert load(tables).gemm.dtype == "fp8"


def test_gemm_faster_than_any_dtype_is_refused(tables):
    replace_line(tables, GEMM, 5, "4096,2048,4096,0.5,0.5")
    msg = error(tables)
    assert "gemm/h100/data.csv: line 5: latency_us 0.5 for m=4096 k=2048 n=4096 is below the FP8 roofline" in msg


# ---------------------------------------------------------------- bad
@pytest.mark.parametrize("rel, header, missing", [
    (GEMM, "m,k,latency_us,mfu", "n"),
    (PREFILL, "dtype,seq_len,latency_us", "mfu"),
    (DECODE, "dtype,batch_size,kv_len,latency_us,mfu", "kv_dtype"),
])
def test_missing_column(tables, rel, header, missing):
    replace_line(tables, rel, 1, header)
    msg = error(tables)
    assert f"--bench-data-path {tables}: {rel.as_posix()}: line 1: header" in msg
    assert f"(missing column {missing})" in msg


def test_columns_in_wrong_order(tables):
    replace_line(tables, GEMM, 1, "k,m,n,latency_us,mfu")
    assert "(wrong order)" in error(tables)


@pytest.mark.parametrize("rel, line, text, column, cell", [
    (GEMM, 3, "64,2048,4096,abc,0.1", "latency_us", "abc"),
    (GEMM, 2, "8,2048,4096,12.0,", "mfu", ""),
    (GEMM, 4, "5x,2048,4096,12.0,0.1", "m", "5x"),
    (PREFILL, 3, "bf16,4096,nan,0.5", "latency_us", "nan"),
    (DECODE, 2, "bf16,bf16,1,1024,12.0,zero", "mfu", "zero"),
])
def test_non_numeric_cell(tables, rel, line, text, column, cell):
    replace_line(tables, rel, line, text)
    msg = error(tables)
    assert msg.startswith(f"--bench-data-path {tables}: {rel.as_posix()}: line {line}: column {column}: {cell!r}")


def test_sizes_must_be_positive_integers(tables):
    replace_line(tables, DECODE, 2, "bf16,bf16,1.5,1024,12.0,0.001")
    assert "line 2: column batch_size: '1.5' is not an integer from 1 to 2,147,483,647" in error(tables)


@pytest.mark.parametrize("mfu", ["1.5", "-0.1", "0.0"])
def test_mfu_outside_zero_one(tables, mfu):
    replace_line(tables, PREFILL, 3, f"bf16,4096,200.0,{mfu}")
    msg = error(tables)
    assert f"mha/prefill/h100/32-8-128.csv: line 3: column mfu: {mfu} is outside (0, 1]" in msg


def test_mfu_zero_accepted_only_as_a_rounded_value(tables):
    # 4·32·128·1·1024 FLOPs in 40 us is an MFU of 0.0004, which three decimals print as 0.000 (the published rows).
    replace_line(tables, DECODE, 2, "bf16,bf16,1,1024,40.0,0.0")
    load(tables)
    replace_line(tables, DECODE, 2, "bf16,bf16,1,1024,0.5,0.0")  # would be an MFU of 0.034: not a rounding
    assert "line 2: column mfu: 0.0 is outside (0, 1]" in error(tables)


def test_latency_implying_mfu_above_one_is_refused(tables):
    replace_line(tables, PREFILL, 4, "bf16,16384,10.0,0.9")
    assert "line 4: latency_us 10.0 implies an MFU of" in error(tables)


def test_latency_must_be_positive(tables):
    replace_line(tables, DECODE, 3, "bf16,bf16,1,4096,0,0.1")
    assert "line 3: column latency_us: '0' must be > 0" in error(tables)


@pytest.mark.parametrize("rel", [GEMM, PREFILL, DECODE])
def test_empty_table(tables, rel):
    rewrite(tables, rel, lambda t: t.splitlines()[0] + "\n")
    assert error(tables).endswith(f"{rel.as_posix()}: has a header but no data rows (an empty table)")
    (tables / rel).write_text("")
    assert f"{rel.as_posix()}: is empty" in error(tables)


def test_row_with_too_few_fields(tables):
    replace_line(tables, GEMM, 6, "512,2048")
    assert error(tables).endswith("gemm/h100/data.csv: line 6: 2 field(s), expected 5 (m,k,n,latency_us,mfu)")


def test_duplicate_row(tables):
    rewrite(tables, PREFILL, lambda t: t + "bf16,1024,30.0,0.2\n")
    assert "line 5: duplicate row seq_len=1024 (first at line 2)" in error(tables)


def test_gemm_grid_must_be_full(tables):
    rewrite(tables, GEMM, lambda t: "\n".join(line for line in t.splitlines() if not line.startswith("64,8192,16384,"))
            + "\n")
    assert "must form a full m x k x n grid: no row m=64 k=8192 n=16384" in error(tables)


def test_missing_pieces(tmp_path):
    root = write_tables(tmp_path / "b")
    assert "no tables for GPU 'A100' in gemm/ (GPU folders: h100)" in error(root, "A100")
    (root / GEMM).unlink()
    assert error(root).endswith("gemm/h100/data.csv: file is missing")
    assert "no such folder" in error(tmp_path / "nowhere")
    root2 = write_tables(tmp_path / "c")
    for f in (root2 / "mha" / "decode" / "h100").iterdir():
        f.unlink()
    assert "holds no {H}-{Hkv}-{dh}-tp{T}.csv tables" in error(root2)
    (root2 / "mha" / "decode" / "h100" / "notes.csv").write_text("x\n")
    assert "notes.csv: file name is not {H}-{Hkv}-{dh}-tp{T}.csv" in error(root2)


def test_bad_table_through_the_cli(tmp_path, capsys):
    from blis_sim import cli, logging_setup

    root = write_tables(tmp_path / "b")
    replace_line(root, GEMM, 3, "64,2048,4096,abc,0.1")
    repo = Path(__file__).parents[2]
    folder = repo / "model_configs" / "llama-3.1-8b-instruct"
    rc = cli.run_cli(["run", "--model", "m", "--model-config-folder", str(folder),
                      "--hardware-config", str(repo / "hardware_config.json"), "--hardware", "H100", "--tp", "1",
                      "--bench-data-path", str(root)], prog_name="blis")
    logging_setup.reset()
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert err == (f"blis: error: --bench-data-path {root}: gemm/h100/data.csv: line 3: column latency_us: 'abc' is "
                   f"not a number\n")


# ---------------------------------------------------------------- shipped
def test_published_h100_tables(bench_data):
    db = load(bench_data)
    assert db.gpu_folder == "h100" and db.gemm.num_rows == 112
    assert db.gemm.dtype == "fp8"  # read as BF16 they would beat the BF16 peak by 30% (see tables.py)
    assert db.shapes() == ["28-4-128", "32-32-128", "32-8-128", "40-40-128", "56-8-128", "64-8-128"]
    assert len(db.decode) == 18
    t = db.decode_table("32-8-128", 1, 2.0)
    assert t.latency_us[0, 0] == 39.718  # the row whose mfu column is 0.0 (a rounded 0.0004) is accepted as data
    assert sum(x.num_measured for ts in db.decode.values() for x in ts) == 755
