"""Loading and validating the kernel-benchmark tables of ``--bench-data-path`` (ROOFLINE.md §4.1, §9 D4, D5, D18).

Layout, for a GPU folder g (matched case-insensitively):

    gemm/g/data.csv                       m,k,n,latency_us,mfu[,dtype]
    mha/prefill/g/{H}-{Hkv}-{dh}.csv      dtype,seq_len,latency_us,mfu
    mha/decode/g/{H}-{Hkv}-{dh}-tp{T}.csv dtype,kv_dtype,batch_size,kv_len,latency_us,mfu

Every file is checked once, here: the header must name the columns in this order (extra trailing columns are
allowed), every data row must have them all, sizes are integers > 0, latencies finite and > 0, and the ``mfu``
column a number in (0, 1]. The published tables round ``mfu`` to three decimals, so a 0.000 cell is accepted
only where the row's own latency gives an MFU below 0.0005 (it *is* a rounded value); any other 0 is an error.
The models never read the ``mfu`` column: efficiencies are recomputed from ``latency_us`` (§9 D5), which is > 0,
so an MFU of 0 cannot reach a step time.

The GEMM table carries no dtype in the published layout. Its rows are read as BF16 GEMMs when that is physically
possible on the GPU (no row faster than the BF16 roofline of the GPU's peaks), else as FP8 GEMMs (weights and
activations 1 byte, output BF16, against twice the BF16 tensor peak). The shipped H100 table is FP8 by this test:
read as BF16, its large GEMMs would run at 130% of the dense BF16 peak and its 8192x11008 GEMM at m = 8 would read
its weights at 129% of the HBM peak; read as FP8 its rows stay below 65% of either roofline, and its ``mfu`` column
equals 2mkn / (latency x 1979 TFLOP/s), the FP8 peak. ``blis bench-mfu`` writes an explicit sixth column ``dtype``.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...config.validators import MAX_KERNEL_LATENCY_US
from ...errors import InputError

GEMM_COLUMNS = ("m", "k", "n", "latency_us", "mfu")
PREFILL_COLUMNS = ("dtype", "seq_len", "latency_us", "mfu")
DECODE_COLUMNS = ("dtype", "kv_dtype", "batch_size", "kv_len", "latency_us", "mfu")

# Table dtype names -> bytes per element. FP8 GEMMs run at twice the BF16 tensor peak on Hopper/Blackwell.
DTYPE_BYTES: dict[str, float] = {
    "bf16": 2.0, "bfloat16": 2.0, "fp16": 2.0, "float16": 2.0, "half": 2.0,
    "fp8": 1.0, "fp8_e4m3": 1.0, "fp8_e5m2": 1.0, "e4m3": 1.0, "float8_e4m3fn": 1.0, "int8": 1.0,
    "fp32": 4.0, "float32": 4.0,
}
GEMM_PEAK_FACTOR = {"bf16": 1.0, "fp8": 2.0}  # tensor peak relative to the hardware config's TFlopsPeak (BF16)
ROUNDED_ZERO_MFU = 0.0005  # a three-decimal 0.000 stands for an MFU below this

_PREFILL_NAME = re.compile(r"^(\d+)-(\d+)-(\d+)\.csv$")
_DECODE_NAME = re.compile(r"^(\d+)-(\d+)-(\d+)-tp(\d+)\.csv$")


# A kernel size (m, k, n, seq_len, batch_size, kv_len) fits a 32-bit index, as every measured kernel's does.
MAX_SIZE = 2**31 - 1


def _clip(text: str, limit: int = 40) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "..."


def shape_key(heads: int, kv_heads: int, head_dim: int) -> str:
    """The attention-shape key of the table file names: ``{H}-{Hkv}-{dh}``."""
    return f"{heads}-{kv_heads}-{head_dim}"


# ---------------------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GemmDtype:
    """Element sizes and tensor peak of a GEMM: y (m x n) = x (m x k) @ W (k x n)."""

    act_bytes: float  # x
    weight_bytes: float  # W
    out_bytes: float  # y
    peak_factor: float  # tensor peak / TFlopsPeak (the dense BF16 peak): 2 for FP8

    def memory_bytes(self, m: float, k: float, n: float) -> float:
        return m * k * self.act_bytes + k * n * self.weight_bytes + m * n * self.out_bytes


@dataclass(frozen=True)
class GemmTable:
    """Dense GEMM latencies on a full (m, k, n) grid: ``latency_us[i, j, l]`` is the cell (ks[i], ns[j], ms[l])."""

    source: str  # file, for messages
    ms: np.ndarray  # ascending
    ks: np.ndarray  # ascending
    ns: np.ndarray  # ascending
    latency_us: np.ndarray  # (len(ks), len(ns), len(ms))
    dtype: str  # "bf16" or "fp8"
    in_bytes: float  # bytes per weight / input activation element
    out_bytes: float  # bytes per output element
    peak_factor: float  # the dtype's tensor peak / TFlopsPeak

    @property
    def num_rows(self) -> int:
        return self.latency_us.size

    @property
    def gemm_dtype(self) -> GemmDtype:
        return GemmDtype(self.in_bytes, self.in_bytes, self.out_bytes, self.peak_factor)


@dataclass(frozen=True)
class PrefillTable:
    """Causal self-attention of one sequence of ``seq_len`` tokens, one layer, all ``heads`` query heads."""

    source: str
    heads: int
    kv_heads: int
    head_dim: int
    seq_len: np.ndarray  # ascending
    latency_us: np.ndarray


@dataclass(frozen=True)
class DecodeTable:
    """Decode attention (one query token per sequence), one layer, the heads of one GPU at TP ``tp``.

    ``latency_us[i, j]`` is the cell (batch[i], kv_len[j]); NaN where the grid has no measurement (the published
    grids miss the large corners).
    """

    source: str
    heads: int
    kv_heads: int
    head_dim: int
    tp: int
    kv_dtype: str
    kv_bytes: float
    batch: np.ndarray  # ascending
    kv_len: np.ndarray  # ascending
    latency_us: np.ndarray  # (len(batch), len(kv_len))

    @property
    def num_measured(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.latency_us)))


@dataclass(frozen=True)
class MFUDatabase:
    """All tables of one GPU folder, validated. Built by ``MFUDatabase.load``."""

    root: Path
    gpu_folder: str  # the folder name as found on disk (e.g. "h100")
    gemm: GemmTable
    prefill: dict[str, PrefillTable]  # shape key -> table
    decode: dict[tuple[str, int], tuple[DecodeTable, ...]] = field(default_factory=dict)  # (key, tp) -> per kv dtype

    @classmethod
    def load(cls, root: Path | str, gpu: str, peak_tflops: float, bw_peak_tbs: float) -> "MFUDatabase":
        """Read and check every table of GPU ``gpu`` under ``root``; any problem is one ``InputError`` line.

        ``peak_tflops`` (dense BF16) and ``bw_peak_tbs`` are the GPU's peaks from the hardware config: they decide
        the GEMM table's dtype and whether a 0.000 ``mfu`` cell is a rounded value.
        """
        return _Loader(Path(root), gpu, peak_tflops * 1e12, bw_peak_tbs * 1e12).load()

    def shapes(self) -> list[str]:
        return sorted(self.prefill)

    def nearest_shape(self, heads: int, kv_heads: int, head_dim: int) -> tuple[str, float]:
        """The table shape nearest to (H, Hkv, dh) in Euclidean distance (ties: lexicographic order), and that
        distance (0 for an exact match). Used only to say which shape the reference would have borrowed."""
        best, dist = "", math.inf
        for key in sorted(self.prefill):
            t = self.prefill[key]
            d = math.dist((heads, kv_heads, head_dim), (t.heads, t.kv_heads, t.head_dim))
            if d < dist:
                best, dist = key, d
        return best, dist

    def decode_table(self, key: str, tp: int, kv_bytes: float) -> DecodeTable | None:
        """The decode table of shape ``key`` at TP ``tp`` whose KV dtype has ``kv_bytes`` bytes, else its first one."""
        tables = self.decode.get((key, tp))
        if not tables:
            return None
        for t in tables:
            if t.kv_bytes == kv_bytes:
                return t
        return tables[0]

    def describe(self) -> dict:
        return {
            "bench_data_path": str(self.root),
            "gpu_folder": self.gpu_folder,
            "gemm_dtype": self.gemm.dtype,
            "attention_shapes": self.shapes(),
        }


# ---------------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------------


class _Loader:
    def __init__(self, root: Path, gpu: str, peak_flops: float, peak_bw: float) -> None:
        self.root = root
        self.gpu = gpu
        self.peak_flops = peak_flops
        self.peak_bw = peak_bw
        self.where = f"--bench-data-path {root}"

    def fail(self, rel: str, problem: str, line: int | None = None) -> InputError:
        at = f": line {line}" if line is not None else ""
        return InputError(f"{self.where}: {rel}{at}: {problem}")

    # ---------------------------------------------------------------- folders
    def load(self) -> MFUDatabase:
        if not self.root.is_dir():
            raise InputError(f"{self.where}: no such folder (a folder of MFU tables with gemm/ and mha/ is required)")
        gemm_dir = self._gpu_dir(Path("gemm"))
        prefill_dir = self._gpu_dir(Path("mha") / "prefill")
        decode_dir = self._gpu_dir(Path("mha") / "decode")
        gemm = self._gemm(gemm_dir / "data.csv")
        prefill = self._prefill_tables(prefill_dir)
        decode = self._decode_tables(decode_dir)
        return MFUDatabase(self.root, gemm_dir.name, gemm, prefill, decode)

    def _gpu_dir(self, kind: Path) -> Path:
        """``<root>/<kind>/<gpu>``, the GPU folder matched case-insensitively (§9 D18); exact name wins."""
        parent = self.root / kind
        if not parent.is_dir():
            raise InputError(f"{self.where}: folder {kind.as_posix()}/ is missing (expected {kind.as_posix()}/<gpu>/)")
        folders = sorted(p for p in parent.iterdir() if p.is_dir())
        folded = [p for p in folders if p.name.lower() == self.gpu.lower()]
        if len(folded) == 1:
            return folded[0]
        names = ", ".join(p.name for p in folders) or "none"
        if not folded:
            raise InputError(
                f"{self.where}: no tables for GPU {self.gpu!r} in {kind.as_posix()}/ (GPU folders: {names})")
        # folder names differing only in case (h100 and H100): which one is meant cannot be told, even when one
        # spells the GPU exactly (a case-insensitive file system would see one folder)
        both = " and ".join(f"{kind.as_posix()}/{p.name}" for p in folded)
        raise InputError(f"{self.where}: {both} both match GPU {self.gpu!r} (folder names are matched ignoring case); "
                         "keep one")

    def _rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _read(self, path: Path, columns: tuple[str, ...]) -> tuple[str, list[str], list[tuple[int, list[str]]]]:
        """(relative name, header, [(line number, cells)]) of a CSV whose header starts with ``columns``."""
        rel = self._rel(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise self.fail(rel, "file is missing") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise self.fail(rel, f"cannot be read ({exc})") from None
        reader = csv.reader(io.StringIO(text))
        try:
            lines = [(i, row) for i, row in enumerate(reader, start=1) if any(cell.strip() for cell in row)]
        except csv.Error as exc:
            raise self.fail(rel, f"not valid CSV ({exc})", reader.line_num) from None
        expected = ",".join(columns)
        if not lines:
            raise self.fail(rel, f"is empty (expected the header {expected} and data rows)")
        (hline, header), data = lines[0], lines[1:]
        names = [c.strip().lower() for c in header]
        missing = [c for c in columns if c not in names]
        if missing or names[: len(columns)] != list(columns):
            plural = "s" if len(missing) > 1 else ""
            detail = f"missing column{plural} {', '.join(missing)}" if missing else "wrong order"
            shown = _clip(",".join(c.strip() for c in header), 80)
            raise self.fail(rel, f"header {shown!r} does not start with {expected} ({detail})", hline)
        if not data:
            raise self.fail(rel, "has a header but no data rows (an empty table)")
        for line, row in data:
            if len(row) < len(columns):
                raise self.fail(rel, f"{len(row)} field(s), expected {len(columns)} ({expected})", line)
        return rel, names, data

    def _dtype(self, rel: str, line: int, text: str) -> str:
        """The ``dtype`` cell of an attention row: a name of ``DTYPE_BYTES``."""
        name = text.strip().lower()
        if name not in DTYPE_BYTES:
            raise self.fail(rel, f"column dtype: {_clip(text)!r} is not one of {', '.join(sorted(DTYPE_BYTES))}", line)
        return name

    def _int(self, rel: str, line: int, column: str, text: str) -> int:
        value = self._number(rel, line, column, text)
        if not value.is_integer() or not 1 <= value <= MAX_SIZE:
            raise self.fail(rel, f"column {column}: {_clip(text)!r} is not an integer from 1 to {MAX_SIZE:,}", line)
        return int(value)

    def _number(self, rel: str, line: int, column: str, text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise self.fail(rel, f"column {column}: {_clip(text)!r} is not a number", line) from None
        if not math.isfinite(value):
            raise self.fail(rel, f"column {column}: {_clip(text)!r} is not a finite number", line)
        return value

    def _latency_mfu(self, rel: str, line: int, cells: tuple[str, str], flops: float, bf16: bool = True) -> float:
        """Check the ``latency_us`` and ``mfu`` cells of a row (``flops``: its work; ``bf16``: the row must also
        stay within the BF16 tensor peak, i.e. its MFU recomputed from the latency is at most 1)."""
        latency = self._number(rel, line, "latency_us", cells[0])
        if not 0 < latency <= MAX_KERNEL_LATENCY_US:
            raise self.fail(rel, f"column latency_us: {_clip(cells[0])!r} must be > 0 and at most "
                                 f"{MAX_KERNEL_LATENCY_US:,.0f} (microseconds: one kernel of one layer)", line)
        implied = flops / (latency * 1e-6 * self.peak_flops)
        if bf16 and implied > 1.0:
            raise self.fail(rel, f"latency_us {_clip(cells[0])} implies an MFU of {implied:.3f} > 1 at this GPU's "
                                 f"peak of {self.peak_flops / 1e12:g} TFLOP/s: not a measurement of this GPU", line)
        mfu = self._number(rel, line, "mfu", cells[1])
        if not 0.0 < mfu <= 1.0:
            if not (mfu == 0.0 and implied < ROUNDED_ZERO_MFU):
                raise self.fail(rel, f"column mfu: {_clip(cells[1])} is outside (0, 1] (an MFU of 0 is a bug, "
                                     f"not a rounding: latency_us {_clip(cells[0])} implies {implied:.4f})", line)
        return latency

    # ---------------------------------------------------------------- GEMM
    def _gemm(self, path: Path) -> GemmTable:
        rel, header, data = self._read(path, GEMM_COLUMNS)
        has_dtype = len(header) > 5 and header[5] == "dtype"
        cells: dict[tuple[int, int, int], tuple[int, float]] = {}
        dtypes: set[str] = set()
        for line, row in data:
            m, k, n = (self._int(rel, line, c, row[i]) for i, c in enumerate(("m", "k", "n")))
            latency = self._latency_mfu(rel, line, (row[3], row[4]), 2.0 * m * k * n, bf16=False)
            if (m, k, n) in cells:
                raise self.fail(rel, f"duplicate row m={m} k={k} n={n} (first at line {cells[(m, k, n)][0]})", line)
            cells[(m, k, n)] = (line, latency)
            if has_dtype:
                name = row[5].strip().lower() if len(row) > 5 else ""
                if name not in DTYPE_BYTES or DTYPE_BYTES[name] not in (1.0, 2.0):
                    raise self.fail(rel, f"column dtype: {name!r} is not a GEMM dtype (bf16, fp16 or fp8)", line)
                dtypes.add("fp8" if DTYPE_BYTES[name] == 1.0 else "bf16")
        if len(dtypes) > 1:
            raise self.fail(rel, "column dtype: mixes BF16 and FP8 rows (one dtype per table)")
        ms = sorted({m for m, _, _ in cells})
        ks = sorted({k for _, k, _ in cells})
        ns = sorted({n for _, _, n in cells})
        grid = np.full((len(ks), len(ns), len(ms)), np.nan)
        for (m, k, n), (_, latency) in cells.items():
            grid[ks.index(k), ns.index(n), ms.index(m)] = latency
        if np.isnan(grid).any():
            i, j, l = (int(x[0]) for x in np.nonzero(np.isnan(grid)))
            raise self.fail(rel, f"the rows must form a full m x k x n grid: no row m={ms[l]} k={ks[i]} n={ns[j]}")
        dtype = dtypes.pop() if dtypes else self._infer_gemm_dtype(rel, cells)
        self._check_gemm_roofline(rel, cells, dtype)
        arr = lambda v: np.array(v, dtype=float)  # noqa: E731
        return GemmTable(rel, arr(ms), arr(ks), arr(ns), grid, dtype, 2.0 if dtype == "bf16" else 1.0, 2.0,
                         GEMM_PEAK_FACTOR[dtype])

    def _roofline_s(self, m: float, k: float, n: float, dtype: str) -> float:
        """Plain roofline time of an m x k x n GEMM in ``dtype`` at the GPU's peaks (no efficiency)."""
        b_in = 2.0 if dtype == "bf16" else 1.0
        compute = 2.0 * m * k * n / (self.peak_flops * GEMM_PEAK_FACTOR[dtype])
        memory = ((m * k + k * n) * b_in + m * n * 2.0) / self.peak_bw
        return compute if compute > memory else memory

    def _infer_gemm_dtype(self, rel: str, cells) -> str:
        for dtype in ("bf16", "fp8"):
            if all(self._roofline_s(m, k, n, dtype) <= lat * 1e-6 for (m, k, n), (_, lat) in cells.items()):
                return dtype
        return "fp8"  # _check_gemm_roofline names the impossible row

    def _check_gemm_roofline(self, rel: str, cells, dtype: str) -> None:
        for (m, k, n), (line, lat) in cells.items():
            floor = self._roofline_s(m, k, n, dtype)
            if floor > lat * 1e-6:
                raise self.fail(
                    rel, f"latency_us {lat:g} for m={m} k={k} n={n} is below the {dtype.upper()} roofline of this GPU "
                         f"({floor * 1e6:.3f} us at its peak FLOP/s and bandwidth): not a measurement of this GPU",
                    line)

    # ---------------------------------------------------------------- attention
    def _csv_files(self, folder: Path, pattern: re.Pattern, form: str) -> list[tuple[Path, tuple[int, ...]]]:
        out = []
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() != ".csv":
                continue
            m = pattern.match(path.name)
            if m is None:
                raise self.fail(self._rel(path), f"file name is not {form}")
            out.append((path, tuple(int(g) for g in m.groups())))
        if not out:
            raise InputError(f"{self.where}: {self._rel(folder)}/ holds no {form} tables")
        return out

    def _check_heads(self, rel: str, heads: int, kv_heads: int, head_dim: int, tp: int = 1) -> None:
        if min(heads, kv_heads, head_dim, tp) < 1 or heads % kv_heads:
            raise self.fail(rel, "file name: heads, KV heads, head_dim and tp must be >= 1, KV heads dividing heads")

    def _prefill_tables(self, folder: Path) -> dict[str, PrefillTable]:
        tables = {}
        for path, (h, hkv, dh) in self._csv_files(folder, _PREFILL_NAME, "{H}-{Hkv}-{dh}.csv"):
            rel, _, data = self._read(path, PREFILL_COLUMNS)
            self._check_heads(rel, h, hkv, dh)
            seen: dict[int, tuple[int, float]] = {}
            for line, row in data:
                self._dtype(rel, line, row[0])
                s = self._int(rel, line, "seq_len", row[1])
                latency = self._latency_mfu(rel, line, (row[2], row[3]), 2.0 * h * dh * s * s)
                if s in seen:
                    raise self.fail(rel, f"duplicate row seq_len={s} (first at line {seen[s][0]})", line)
                seen[s] = (line, latency)
            order = sorted(seen)
            tables[shape_key(h, hkv, dh)] = PrefillTable(
                rel, h, hkv, dh, np.array(order, dtype=float), np.array([seen[s][1] for s in order], dtype=float))
        return tables

    def _decode_tables(self, folder: Path) -> dict[tuple[str, int], tuple[DecodeTable, ...]]:
        tables: dict[tuple[str, int], tuple[DecodeTable, ...]] = {}
        for path, (h, hkv, dh, tp) in self._csv_files(folder, _DECODE_NAME, "{H}-{Hkv}-{dh}-tp{T}.csv"):
            rel, _, data = self._read(path, DECODE_COLUMNS)
            self._check_heads(rel, h, hkv, dh, tp)
            groups: dict[str, dict[tuple[int, int], tuple[int, float]]] = {}
            for line, row in data:
                self._dtype(rel, line, row[0])
                kv_dtype = row[1].strip().lower()
                if kv_dtype not in DTYPE_BYTES:
                    raise self.fail(rel, f"column kv_dtype: {_clip(row[1])!r} is not one of "
                                         f"{', '.join(sorted(DTYPE_BYTES))}", line)
                b = self._int(rel, line, "batch_size", row[2])
                kv = self._int(rel, line, "kv_len", row[3])
                flops = 4.0 * (h / tp) * dh * b * kv
                latency = self._latency_mfu(rel, line, (row[4], row[5]), flops)
                group = groups.setdefault(kv_dtype, {})
                if (b, kv) in group:
                    raise self.fail(rel, f"duplicate row kv_dtype={kv_dtype} batch_size={b} kv_len={kv} "
                                         f"(first at line {group[(b, kv)][0]})", line)
                group[(b, kv)] = (line, latency)
            built = []
            for kv_dtype, cells in groups.items():
                batches = sorted({b for b, _ in cells})
                lens = sorted({kv for _, kv in cells})
                grid = np.full((len(batches), len(lens)), np.nan)
                for (b, kv), (_, latency) in cells.items():
                    grid[batches.index(b), lens.index(kv)] = latency
                built.append(DecodeTable(rel, h, hkv, dh, tp, kv_dtype, DTYPE_BYTES[kv_dtype],
                                         np.array(batches, dtype=float), np.array(lens, dtype=float), grid))
            tables[(shape_key(h, hkv, dh), tp)] = tuple(built)
        return tables
