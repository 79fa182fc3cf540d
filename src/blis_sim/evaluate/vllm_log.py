"""What a vLLM server's own files say about it: ``vllm.log`` (its log) and ``vllm_logging.json``.

From the log: the version (``vLLM API server version X`` / ``V1 LLM engine (vX)``), the non-default arguments
(a Python dict literal, read with ``ast.literal_eval``, never evaluated), the engine configuration line
(``tensor_parallel_size=``, ``dtype=``, ``max_seq_len=``) and the KV blocks it allocated (``num_gpu_blocks is: N``,
or ``GPU KV cache size: T tokens`` divided by the block size). A log can hold several server starts; the last one
wins, field by field. ``vllm_logging.json`` is usually a logging configuration only; where it holds
``num_gpu_blocks`` or ``gpu_memory_utilization`` keys (structured logs), those are read too.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .experiment import Server
from .fields import Fields, GroundTruthError, as_float, as_int, read_json

_VERSION = (re.compile(r"vLLM API server version v?([0-9][0-9A-Za-z.+\-]*)"),
            re.compile(r"LLM engine \(v([0-9][0-9A-Za-z.+\-]*)\)"))
_ARGS = re.compile(r"non-default args: (\{.*\})\s*$")
_BLOCKS = re.compile(r"num_gpu_blocks is: (\d+)")
_CACHE_TOKENS = re.compile(r"GPU KV cache size: ([\d,]+) tokens")
_ENGINE_FIELDS = {
    "tensor_parallel_size": re.compile(r"\btensor_parallel_size=(\d+)"),
    "dtype": re.compile(r"\bdtype=(?:torch\.)?(\w+)"),
    "max_seq_len": re.compile(r"\bmax_seq_len=(\d+)"),
}
_KEYWORDS = ("version", "non-default args", "num_gpu_blocks", "KV cache size", "tensor_parallel_size")


@dataclass
class ServerLog:
    """The settings a vLLM server's files record; every field None/empty when not recorded."""

    source: str = ""
    version: str | None = None
    args: dict[str, Any] = field(default_factory=dict)  # the last start's non-default args
    tensor_parallel_size: int | None = None
    dtype: str | None = None
    max_model_len: int | None = None
    num_gpu_blocks: int | None = None
    num_gpu_blocks_field: str = ""  # file and field the block count came from
    gpu_memory_utilization: float | None = None

    def arg_int(self, *names: str) -> int | None:
        for name in names:
            value = as_int(self.args.get(name))
            if value is not None:
                return value
        return None

    def served_model(self) -> str | None:
        served = self.args.get("served_model_name")
        if isinstance(served, list) and served and isinstance(served[0], str):
            return served[0]
        if isinstance(served, str):
            return served
        model = self.args.get("model") or self.args.get("model_tag")
        return model if isinstance(model, str) else None


def read_server_files(folder: Path) -> ServerLog:
    """Parse ``folder/vllm.log`` and ``folder/vllm_logging.json`` where they exist (unreadable ones are skipped:
    they are optional)."""
    out = ServerLog()
    log_path = folder / "vllm.log"
    if log_path.is_file():
        _parse_log(log_path, out)
    json_path = folder / "vllm_logging.json"
    if json_path.is_file():
        try:
            _parse_logging_json(read_json(json_path), json_path, out)
        except ValueError:
            pass
    return out


def _parse_log(path: Path, out: ServerLog) -> None:
    out.source = str(path)
    cache_tokens: int | None = None
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except OSError:
        return
    with handle:
        for line in handle:
            if not any(k in line for k in _KEYWORDS):
                continue
            for pattern in _VERSION:
                m = pattern.search(line)
                if m:
                    out.version = m.group(1).rstrip(".,")
            m = _ARGS.search(line)
            if m:
                args = _literal(m.group(1))
                if args is not None:
                    out.args = args
            m = _BLOCKS.search(line)
            if m:
                out.num_gpu_blocks = int(m.group(1))
                out.num_gpu_blocks_field = f"{path}: num_gpu_blocks"
                cache_tokens = None
            m = _CACHE_TOKENS.search(line)
            if m:
                cache_tokens = int(m.group(1).replace(",", ""))
            if "tensor_parallel_size=" in line:
                for name, pattern in _ENGINE_FIELDS.items():
                    m = pattern.search(line)
                    if m:
                        if name == "tensor_parallel_size":
                            out.tensor_parallel_size = int(m.group(1))
                        elif name == "dtype":
                            out.dtype = m.group(1)
                        else:
                            out.max_model_len = int(m.group(1))
    block_size = as_int(out.args.get("block_size")) or 16
    if out.num_gpu_blocks is None and cache_tokens:
        out.num_gpu_blocks = cache_tokens // block_size
        out.num_gpu_blocks_field = f"{path}: GPU KV cache size"
    util = as_float(out.args.get("gpu_memory_utilization"))
    if util is not None:
        out.gpu_memory_utilization = util


def _literal(text: str) -> dict | None:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _parse_logging_json(raw: Any, path: Path, out: ServerLog) -> None:
    found: dict[str, Any] = {}
    _collect(raw, ("num_gpu_blocks", "gpu_memory_utilization"), found)
    blocks = as_int(found.get("num_gpu_blocks"))
    if blocks is not None and blocks > 0 and out.num_gpu_blocks is None:
        out.num_gpu_blocks = blocks
        out.num_gpu_blocks_field = f"{path}: num_gpu_blocks"
    util = as_float(found.get("gpu_memory_utilization"))
    if util is not None and out.gpu_memory_utilization is None:
        out.gpu_memory_utilization = util


def _collect(obj: Any, keys: tuple[str, ...], found: dict[str, Any], depth: int = 0) -> None:
    if depth > 8:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in keys and not isinstance(v, (dict, list)):
                found[k] = v
            else:
                _collect(v, keys, found, depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            _collect(v, keys, found, depth + 1)


def server_settings(folder: Path, exp_cfg: Fields | None, log: ServerLog) -> tuple[Server, int]:
    """The scheduler limits, KV facts and TP of the server behind a benchmark folder: ``exp-config.yaml`` first,
    then what ``vllm.log`` records (its non-default args, its KV cache lines), then vLLM's defaults."""
    def setting(key: str, fallback: int | None = None) -> int:
        if exp_cfg is not None and exp_cfg.has(key):
            return exp_cfg.int(key, minimum=1)
        value = log.arg_int(key) or fallback
        if value is None:
            raise GroundTruthError(folder / "exp-config.yaml", key,
                                   "missing (and no vllm.log records the server's setting)")
        return value

    server = Server(
        max_model_len=setting("max_model_len", log.max_model_len),
        max_num_batched_tokens=setting("max_num_batched_tokens"),
        max_num_seqs=setting("max_num_seqs"),
        block_size=log.arg_int("block_size") or 16,
        gpu_memory_utilization=log.gpu_memory_utilization or 0.9,
        num_gpu_blocks=log.num_gpu_blocks,
        num_gpu_blocks_source=log.num_gpu_blocks_field,
    )
    tp = (as_int(exp_cfg.raw("tensor_parallelism", None)) if exp_cfg is not None else None) or \
        log.tensor_parallel_size or log.arg_int("tensor_parallel_size") or 1
    return server, tp
