"""Turning what the files say into what the simulator needs: model config, GPU entry, engine loop, KV blocks and
latency-model settings for one experiment. Every decision that can fail raises ``Unsimulatable`` with the reason,
and the experiment's points go into ``failed``.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

from ..config.defaults_file import CoeffRow, DefaultsFile, load_defaults, normalize_vllm_version
from ..errors import InputError
from ..latency.hardware import HardwareCalib
from ..latency.hf_config import ModelConfig, load_model_config
from ..latency.kv_capacity import KVBlocks, resolve_kv_blocks
from .experiment import Experiment

ASYNC_SINCE = (0, 12)  # first vLLM release whose default loop is the asynchronous one (ENGINE.md §7.8)
_VERSION = re.compile(r"(\d+)\.(\d+)")


class Unsimulatable(Exception):
    """An experiment that cannot be simulated, and why."""


def packaged_model_configs() -> Path:
    return Path(str(resources.files("blis_sim") / "data" / "model_configs"))


def model_key(model: str) -> str:
    """The folder name a model matches: its last path component, lower-cased (``org/Name`` -> ``name``)."""
    return model.strip().rstrip("/").rsplit("/", 1)[-1].lower()


def find_model_config(model: str, extra: Path | None) -> Path:
    """The ``<name>/config.json`` folder of ``model``: ``--model-configs`` first (it wins a clash), then the
    packaged configs; folder names are compared case-insensitively."""
    key = model_key(model)
    searched = []
    for root in ([extra] if extra is not None else []) + [packaged_model_configs()]:
        searched.append(str(root))
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            if folder.is_dir() and folder.name.lower() == key and (folder / "config.json").is_file():
                return folder
    raise Unsimulatable(f"no model config for {model}: no {key}/config.json in {' or '.join(searched)} "
                        "(add one with --model-configs DIR)")


def load_model(folder: Path) -> ModelConfig:
    try:
        return load_model_config(folder)
    except InputError as exc:
        raise Unsimulatable(str(exc)) from None


def gpu_entry(name: str, hardware_config: Path) -> str:
    """The hardware-config entry a GPU description names: ``H100-80GB-HBM3 (SXM)`` and ``NVIDIA H100 80GB HBM3`` are
    ``H100``; an A100 is ``A100-40GB`` when the description says 40 GB, ``A100-80GB-PCIe`` when it says PCIe, else
    ``A100-80GB``. Exact names win."""
    try:
        names = list(json.loads(hardware_config.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise Unsimulatable(f"{hardware_config}: cannot be read ({exc})") from None
    text = name.strip()
    for n in names:
        if n.lower() == text.lower():
            return n
    flat = re.sub(r"[^a-z0-9]", "", text.lower())
    if "a100" in flat:
        # the 80 GB PCIe card has its own entry (1.935 TB/s, no NVLink); an older file without it gets A100-80GB
        wants = ["a10040gb"] if "40gb" in flat or "40g" in flat else (
            ["a10080gbpcie", "a10080gb"] if "pcie" in flat else ["a10080gb"])
        for want in wants:
            for n in names:
                if re.sub(r"[^a-z0-9]", "", n.lower()) == want:
                    return n
    matches = sorted((n for n in names if re.sub(r"[^a-z0-9]", "", n.lower()) in flat), key=len, reverse=True)
    if matches:
        return matches[0]
    raise Unsimulatable(f"GPU {name!r} is not in {hardware_config} (entries: {', '.join(names)})")


def version_tuple(version: str | None) -> tuple[int, int] | None:
    m = _VERSION.search(version or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def wants_async(version: str | None) -> bool:
    """The loop of the vLLM release that produced a measurement: asynchronous from 0.12 on, and when unknown
    (the default of current releases); synchronous before."""
    v = version_tuple(version)
    return v is None or v >= ASYNC_SINCE


def kv_blocks(exp: Experiment, model: ModelConfig, hw: HardwareCalib) -> KVBlocks:
    """The experiment's recorded block count less the null block, else the derivation from GPU memory at the
    experiment's gpu_memory_utilization (``latency.kv_capacity.resolve_kv_blocks``, as ``blis run`` derives it)."""
    s = exp.server
    try:
        return resolve_kv_blocks(model, hw, exp.tp, block_size=s.block_size,
                                 max_num_batched_tokens=s.max_num_batched_tokens,
                                 gpu_memory_utilization=s.gpu_memory_utilization,
                                 logged=s.num_gpu_blocks, logged_source=s.num_gpu_blocks_source)
    except InputError as exc:
        raise Unsimulatable(str(exc)) from None


def blackbox_row(exp_model: str, gpu: str, tp: int, version: str | None, defaults: DefaultsFile) -> CoeffRow:
    """The defaults file's coefficients for the model (matched by last path component), GPU and TP; of several vLLM
    versions the experiment's own, else the newest one not newer than it, else the newest."""
    key = model_key(exp_model)
    rows = [r for r in defaults.models if model_key(r.id) == key and r.GPU.lower() == gpu.lower()
            and r.tensor_parallelism == tp]
    if not rows:
        have = sorted({f"{r.GPU} TP{r.tensor_parallelism}" for r in defaults.models if model_key(r.id) == key})
        raise Unsimulatable(f"no blackbox coefficients for {exp_model} on {gpu} TP {tp} in {defaults.source} "
                            f"(it has: {', '.join(have) or 'none for this model'})")
    want = version_tuple(version)

    def release(r: CoeffRow) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", normalize_vllm_version(r.vllm_version))[:3])

    rows.sort(key=release)
    if want is not None:
        older = [r for r in rows if release(r)[:2] <= want]
        if older:
            return older[-1]
    return rows[-1]


def defaults_file() -> DefaultsFile:
    return load_defaults(None)
