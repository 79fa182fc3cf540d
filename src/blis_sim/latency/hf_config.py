"""Reading a HuggingFace ``config.json`` into the few dimensions the roofline models need (ROOFLINE.md §1.1).

Parsing follows the reference so that step times match it: a ``text_config`` object (multimodal wrappers) is merged
over the top level, integer fields are read only from JSON numbers (fractions truncated, anything else reads 0), and
the dtype maps to bytes per parameter. Beyond the reference (§9 D22) ``dtype`` is accepted when ``torch_dtype`` is
absent, and the float8 variants count 1 byte. ``head_dim`` and the MoE keys are carried for roofline v2; the
parity model v1 ignores them (§9 D11, D12).

Real HuggingFace configs name the same thing differently; the readers below accept the common spellings: experts as
``num_local_experts`` / ``num_experts`` / ``n_routed_experts``, the experts per token as ``num_experts_per_tok`` /
``moe_topk``, shared experts as ``shared_expert_intermediate_size`` or ``n_shared_experts`` experts of
``moe_intermediate_size``, and MoE on only some layers through ``decoder_sparse_step`` + ``mlp_only_layers`` (Qwen-MoE)
or ``first_k_dense_replace`` + ``moe_layer_freq`` (DeepSeek). Weight precision comes from ``quantization_config``
(an FP8 checkpoint stores 1 byte per weight, a 4-bit one half a byte) into ``weight_bytes_per_param``; the dtype still
sets the activation and KV-cache bytes. Only the KV-capacity derivation reads the weight precision for now: roofline
v1 stays the reference's model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError

# Bytes per parameter by dtype string; a "torch." prefix is tolerated.
DTYPE_BYTES: dict[str, float] = {
    "float32": 4.0,
    "float16": 2.0,
    "bfloat16": 2.0,
    "int8": 1.0,
    "uint8": 1.0,
    "fp8": 1.0,
    "int4": 1.0,
    "nf4": 1.0,
    "float8_e4m3fn": 1.0,
    "float8_e4m3fnuz": 1.0,
    "float8_e5m2": 1.0,
    "float8_e5m2fnuz": 1.0,
}


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Model dimensions in the spec's symbols (L, D, H, Hkv, F, V, b). Validated: L, D, H > 0 and b > 0."""

    num_layers: int  # L
    hidden_size: int  # D
    num_heads: int  # H
    num_kv_heads: int  # Hkv (= H when the file omits it)
    intermediate_size: int  # F as written; 0 when missing (formulas then use 4·D, see ``ffn_size``)
    vocab_size: int  # V (read, unused by v1)
    bytes_per_param: float  # b
    dtype: str  # the dtype string the bytes came from
    head_dim: int = 0  # the file's ``head_dim`` (0 when absent); v1 uses D / H instead
    num_experts: int = 0  # ``num_local_experts`` or ``num_experts`` (0: dense)
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0  # expert MLP width when it differs from intermediate_size (0: the same)
    shared_expert_intermediate_size: int = 0  # always-active shared expert (Qwen-MoE); 0: none
    num_moe_layers: int = 0  # layers whose MLP is the expert mixture (the rest are dense); 0 with experts: all
    weight_bytes_per_param: float = 0.0  # bytes per stored weight from quantization_config; 0: bytes_per_param
    quantization: str = ""  # quantization_config.quant_method ("" when unquantized)
    max_position_embeddings: int = 0
    tie_word_embeddings: bool = False
    model_type: str = ""
    source: str = ""  # the config.json path, for messages and describe()

    @property
    def dh(self) -> float:
        """Head dimension as v1 computes it: real division D / H."""
        return self.hidden_size / self.num_heads

    @property
    def weight_bytes(self) -> float:
        """Bytes per stored weight: the quantized precision where the config declares one, else the dtype's."""
        return self.weight_bytes_per_param or self.bytes_per_param

    @property
    def moe_layers(self) -> int:
        """Number of layers with an expert mixture (0 for a dense model)."""
        if not self.num_experts:
            return 0
        return self.num_moe_layers or self.num_layers

    @property
    def ffn_size(self) -> int:
        """MLP width F, or 4·D when the file has none."""
        return self.intermediate_size if self.intermediate_size > 0 else 4 * self.hidden_size


def _int_field(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    if value != value or value in (float("inf"), float("-inf")):
        return 0
    return int(value)


def _dtype(raw: dict[str, Any], where: str) -> tuple[str, float]:
    for key in ("torch_dtype", "dtype"):
        value = raw.get(key)
        if value is None:
            continue
        name = value.strip().lower().removeprefix("torch.") if isinstance(value, str) else None
        if name in DTYPE_BYTES:
            return name, DTYPE_BYTES[name]
        raise InputError(f"{where}: {key} {value!r} is not supported (accepted: {', '.join(DTYPE_BYTES)})")
    raise InputError(f"{where}: torch_dtype (or dtype) is missing (accepted: {', '.join(DTYPE_BYTES)})")


def _moe_layer_count(raw: dict[str, Any], layers: int, experts: int) -> int:
    """Layers that hold the expert mixture, from the sparse-layer keys of Qwen-MoE and DeepSeek configs."""
    if not experts:
        return 0
    dense = raw.get("mlp_only_layers")
    dense_set = {i for i in dense if isinstance(i, int)} if isinstance(dense, list) else set()
    step = _int_field(raw, "decoder_sparse_step") or 1
    first_dense = _int_field(raw, "first_k_dense_replace")
    freq = _int_field(raw, "moe_layer_freq") or 1
    count = 0
    for i in range(layers):
        if i in dense_set or (i + 1) % step or i < first_dense or (i - first_dense) % freq:
            continue
        count += 1
    return count


# quant_method -> bytes per weight when the config does not say the bit width itself
_QUANT_BYTES = {"fp8": 1.0, "fbgemm_fp8": 1.0, "ptpc_fp8": 1.0, "mxfp4": 0.5, "nvfp4": 0.5, "bitnet": 0.25}


def _weight_bytes(raw: dict[str, Any], where: str) -> tuple[str, float]:
    """(quant_method, bytes per stored weight) from ``quantization_config``; ("", 0.0) for an unquantized model."""
    q = raw.get("quantization_config")
    if not isinstance(q, dict):
        return "", 0.0
    method = str(q.get("quant_method") or "").lower()
    bits = _int_field(q, "bits") or _int_field(q, "w_bit") or _int_field(q, "weight_bits")
    if not bits and method == "compressed-tensors":
        groups = q.get("config_groups")
        if isinstance(groups, dict):
            widths = [
                _int_field(g["weights"], "num_bits")
                for g in groups.values()
                if isinstance(g, dict) and isinstance(g.get("weights"), dict)
            ]
            bits = max(widths, default=0)
    if not bits and method == "bitsandbytes":
        bits = 4 if q.get("load_in_4bit") is True else 8 if q.get("load_in_8bit") is True else 0
    if not bits and method == "modelopt":
        algo = str(q.get("quant_algo") or "").upper()
        bits = 8 if "FP8" in algo else 4 if "FP4" in algo or "INT4" in algo else 0
    if bits:
        return method, bits / 8
    if method in _QUANT_BYTES:
        return method, _QUANT_BYTES[method]
    raise InputError(
        f"{where}: quantization_config.quant_method {method or '(missing)'!r} does not say its weight precision "
        f"(expected bits, config_groups.*.weights.num_bits, or one of {', '.join(sorted(_QUANT_BYTES))})"
    )


# What a config.json dimension may be, physically: (smallest, largest). A key that is present (and not null) must be a
# JSON number in its range; a fraction is truncated as the reference does. Absent keys keep their defaults below.
BOUNDS: dict[str, tuple[int, int]] = {
    "num_hidden_layers": (1, 10_000),
    "hidden_size": (1, 1 << 20),
    "num_attention_heads": (1, 1 << 16),
    "num_key_value_heads": (1, 1 << 16),
    "head_dim": (1, 1 << 16),
    "intermediate_size": (0, 1 << 22),
    "vocab_size": (0, 1 << 24),
    "num_local_experts": (0, 1 << 16),
    "num_experts": (0, 1 << 16),
    "n_routed_experts": (0, 1 << 16),
    "num_experts_per_tok": (0, 1 << 16),
    "moe_topk": (0, 1 << 16),
    "moe_intermediate_size": (0, 1 << 22),
    "shared_expert_intermediate_size": (0, 1 << 22),
    "n_shared_experts": (0, 1 << 10),
    "max_position_embeddings": (0, 1 << 31),
    "decoder_sparse_step": (0, 10_000),
    "first_k_dense_replace": (0, 10_000),
    "moe_layer_freq": (0, 10_000),
}


_COUNTS = ("num_local_experts", "num_experts", "n_routed_experts", "num_experts_per_tok", "n_shared_experts")


def _check_bounds(raw: dict[str, Any], where: str) -> None:
    for key, (lo, hi) in BOUNDS.items():
        value = raw.get(key)
        if value is None:
            continue
        # fractional sizes are truncated as vLLM's int() would, but a fractional count of experts is refused
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and (key not in _COUNTS or float(value).is_integer())
        if not ok or not lo <= int(value) <= hi:
            raise InputError(f"{where}: {key} must be an integer from {lo:,} to {hi:,}, got {value!r}"[:400])


def parse_model_config(raw: Any, where: str, source: str = "") -> ModelConfig:
    """Build a validated ``ModelConfig`` from a decoded ``config.json``; ``where`` prefixes every error message."""
    if not isinstance(raw, dict):
        raise InputError(f"{where}: config.json must hold a JSON object, got {type(raw).__name__}")
    text = raw.get("text_config")
    if isinstance(text, dict):
        raw = {**raw, **text}
    layers = _int_field(raw, "num_hidden_layers")
    hidden = _int_field(raw, "hidden_size")
    heads = _int_field(raw, "num_attention_heads")
    for key, value in (("num_hidden_layers", layers), ("hidden_size", hidden), ("num_attention_heads", heads)):
        if value <= 0:
            raise InputError(f"{where}: {key} must be > 0, got {value}")
    _check_bounds(raw, where)
    kv_heads = _int_field(raw, "num_key_value_heads")
    if kv_heads and (kv_heads > heads or heads % kv_heads):
        raise InputError(f"{where}: num_key_value_heads must divide num_attention_heads ({heads}), got {kv_heads}")
    if raw.get("head_dim") is None and hidden % heads:
        raise InputError(f"{where}: hidden_size ({hidden}) must be a multiple of num_attention_heads ({heads}) when "
                         "the file has no head_dim")
    ffn = _int_field(raw, "intermediate_size")
    if ffn < 0:
        raise InputError(f"{where}: intermediate_size must be >= 0, got {ffn}")
    dtype, nbytes = _dtype(raw, where)
    model_type = raw.get("model_type")
    experts = (
        _int_field(raw, "num_local_experts") or _int_field(raw, "num_experts") or _int_field(raw, "n_routed_experts")
    )
    per_token = _int_field(raw, "num_experts_per_tok") or _int_field(raw, "moe_topk")
    if experts and per_token > experts:
        raise InputError(f"{where}: num_experts_per_tok ({per_token}) exceeds the number of experts ({experts})")
    moe_ffn = _int_field(raw, "moe_intermediate_size")
    shared_ffn = _int_field(raw, "shared_expert_intermediate_size") or _int_field(raw, "n_shared_experts") * moe_ffn
    quant, weight_bytes = _weight_bytes(raw, where)
    return ModelConfig(
        num_layers=layers,
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=kv_heads or heads,
        intermediate_size=ffn,
        vocab_size=_int_field(raw, "vocab_size"),
        bytes_per_param=nbytes,
        dtype=dtype,
        head_dim=_int_field(raw, "head_dim"),
        num_experts=experts,
        num_experts_per_tok=_int_field(raw, "num_experts_per_tok") or _int_field(raw, "moe_topk"),
        moe_intermediate_size=moe_ffn,
        shared_expert_intermediate_size=shared_ffn,
        num_moe_layers=_moe_layer_count(raw, layers, experts),
        weight_bytes_per_param=weight_bytes,
        quantization=quant,
        max_position_embeddings=_int_field(raw, "max_position_embeddings"),
        tie_word_embeddings=raw.get("tie_word_embeddings") is True,
        model_type=model_type if isinstance(model_type, str) else "",
        source=source,
    )


def tp_fits(cfg: ModelConfig, tp: int) -> bool:
    """Whether vLLM accepts tensor-parallel degree ``tp`` for this model: it must divide the attention heads, and
    the KV heads must either split evenly over the GPUs or be replicated a whole number of times on them."""
    if tp < 1 or cfg.num_heads % tp:
        return False
    kv = cfg.num_kv_heads
    return kv % tp == 0 if tp <= kv else tp % kv == 0


def check_tp(cfg: ModelConfig, tp: int, flag: str = "--tp") -> None:
    """Refuse a tensor-parallel degree that vLLM refuses for this model, naming the degrees it accepts."""
    if tp_fits(cfg, tp):
        return
    accepted = ", ".join(str(t) for t in range(1, cfg.num_heads + 1) if tp_fits(cfg, t))
    if cfg.num_heads % tp:
        why = f"does not divide the {cfg.num_heads} attention heads"
    else:
        why = (f"neither divides nor is a multiple of the {cfg.num_kv_heads} KV heads (they must split evenly over "
               "the GPUs or be replicated on each)")
    raise InputError(f"{flag} {tp} {why} of {cfg.source or 'the model config'}, which vLLM refuses; "
                     f"accepted: {accepted}")


def load_model_config(folder: Path | str) -> ModelConfig:
    """Read ``<folder>/config.json`` (the ``--model-config-folder`` flag); every problem is an ``InputError``."""
    folder = Path(folder)
    where = f"--model-config-folder {folder}"
    if not folder.is_dir():
        raise InputError(f"{where}: no such folder (a folder holding a HuggingFace config.json is required)")
    path = folder / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{where}: config.json not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: config.json cannot be read ({exc})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{where}: config.json is not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from None
    except (RecursionError, ValueError) as exc:  # nesting too deep; an integer of thousands of digits
        raise InputError(f"{where}: config.json cannot be read as a model config ({type(exc).__name__})") from None
    return parse_model_config(raw, where, str(path))
