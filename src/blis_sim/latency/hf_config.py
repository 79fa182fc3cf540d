"""Reading a HuggingFace ``config.json`` into the few dimensions the roofline models need (ROOFLINE.md §1.1).

Parsing follows the reference so that step times match it: a ``text_config`` object (multimodal wrappers) is merged
over the top level, integer fields are read only from JSON numbers (fractions truncated, anything else reads 0), and
the dtype maps to bytes per parameter. Beyond the reference (§9 D22) ``dtype`` is accepted when ``torch_dtype`` is
absent, and the float8 variants count 1 byte. ``head_dim`` and the MoE keys are carried for roofline v2; the
parity model v1 ignores them (§9 D11, D12).

Real HuggingFace configs name the same thing differently; the readers below accept the common spellings: experts as
``num_local_experts`` / ``num_experts`` / ``n_routed_experts``, the experts per token as ``num_experts_per_tok`` /
``moe_topk``, shared experts as ``shared_expert_intermediate_size`` (Qwen2-MoE) or ``n_shared_experts`` experts of
``moe_intermediate_size`` (DeepSeek), and MoE on only some layers through ``decoder_sparse_step`` +
``mlp_only_layers`` (Qwen-MoE), ``first_k_dense_replace`` + ``moe_layer_freq`` (DeepSeek; the frequency may also be a
per-layer list of 0/1 flags), ``interleave_moe_layer_step`` (Llama-4: layer i is MoE when (i + 1) % step == 0, a step
of 0 none) or an explicit ``moe_layers`` list of layer indices. A config that declares experts but puts them on no
layer is read as dense.

Llama-4 (``llama4`` / ``llama4_text``) is the one family whose ``intermediate_size`` is the expert width: its dense
layers use ``intermediate_size_mlp`` (``dense_intermediate_size`` here), and every MoE layer has one always-active
shared expert of ``intermediate_size``, as vLLM builds it. Mixtral and Qwen3-MoE have no shared expert.

Weight precision comes from ``quantization_config``, per part of the model (``PARTS``): ``ModelConfig.precision``
says how many bytes a weight of that part takes and whether its GEMMs run W8A8 on FP8 tensor cores. The scheme is
read as vLLM applies it: compressed-tensors ``config_groups`` (a group targets layers by class name, "Linear", or by
module name or ``re:`` regex; weights and input activations both 8-bit float is W8A8 FP8), the FP8 methods (``fp8``,
``fbgemm_fp8``, ``ptpc_fp8``: FP8 weights with dynamic FP8 activations), ModelOpt's ``quant_algo``, and weight-only
schemes (``bits`` / ``w_bit`` / ``weight_bits``, AWQ, GPTQ, bitsandbytes, MXFP4, ...), which store fewer bytes but
multiply in 16 bits. A part stays at the model dtype when the checkpoint's ignore list (compressed-tensors ``ignore``,
``ignored_layers``, ``modules_to_not_convert``, ModelOpt ``exclude_modules``, bitsandbytes
``llm_int8_skip_modules``) covers it, when no config group targets it, for the MoE router of every family whose vLLM
model builds the router without a quantization method (all but Qwen3-MoE), and for the LM head, which vLLM
quantizes only when a GPTQ/AWQ-style config sets ``lm_head: true``. Ignore entries match as vLLM and compressed-tensors
do: ``re:`` patterns with ``re.match`` (anchored at the start only); a plain name matches the module itself, any
module it is a parent of, and (so that names written with or without a wrapper prefix agree) a module whose dotted
name ends with it; ``*`` wildcards match as in ``fnmatch``. Each part is tested through representative module names
of its family (``model.layers.<i>.self_attn.q_proj``, ``language_model.model.layers.<i>.feed_forward.experts...`` for
Llama-4, ``block_sparse_moe.experts.0.w1`` for Mixtral, ``mlp.experts.0.gate_proj`` for Qwen and DeepSeek, ...) on
every layer of the part's kind: a layer counts as covered when at least half of the part's projections are, and the
part when at least half of its layers are. ``weight_bytes_per_param`` keeps its meaning (the main precision of the
linear layers); the dtype still sets the activation and KV-cache bytes. Malformed quantization fields are
``InputError``s naming the file and the field.

DeepSeek's multi-head latent attention (``kv_lora_rank``, ``q_lora_rank``, ``qk_rope_head_dim``,
``qk_nope_head_dim``, ``v_head_dim``) is carried as data; ``kv_bytes_per_token_per_layer`` prices its KV cache (one
latent of ``kv_lora_rank + qk_rope_head_dim`` per token and layer, shared by all heads). Only the KV-capacity
derivation reads the precisions and the latent for now: roofline v1 stays the reference's model.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Callable, Sequence
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

# The parts of a model whose weights may be stored (and multiplied) at different precisions.
PARTS = ("attn", "dense_mlp", "experts", "shared_expert", "router", "lm_head")
_LINEAR_PARTS = frozenset({"attn", "dense_mlp", "experts", "shared_expert"})


@dataclass(frozen=True, slots=True)
class Precision:
    """How one part's weights are stored and multiplied.

    ``weight_bytes``: bytes per stored weight (2 for BF16, 1 for FP8 or INT8, 0.5 for 4-bit formats).
    ``fp8_compute``: the part's GEMMs run W8A8 on FP8 tensor cores (weights and activations both FP8). Weight-only
    quantization (INT4/INT8/FP8 weights, 16-bit activations) is False: it saves weight bytes, not multiply time.
    """

    weight_bytes: float
    fp8_compute: bool


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
    shared_expert_intermediate_size: int = 0  # always-active shared expert(s) per MoE layer, total width; 0: none
    num_moe_layers: int = 0  # layers whose MLP is the expert mixture (the rest are dense); 0 with experts: all
    weight_bytes_per_param: float = 0.0  # bytes per stored weight from quantization_config; 0: bytes_per_param
    quantization: str = ""  # quantization_config.quant_method ("" when unquantized)
    max_position_embeddings: int = 0
    tie_word_embeddings: bool = False
    model_type: str = ""
    source: str = ""  # the config.json path, for messages and describe()
    dense_intermediate_size: int = 0  # dense layers' MLP width when it differs (Llama-4 intermediate_size_mlp); 0: F
    kv_lora_rank: int = 0  # MLA (DeepSeek): the compressed KV latent width; 0: standard attention
    q_lora_rank: int = 0  # MLA: the compressed query width (0: queries projected directly)
    qk_rope_head_dim: int = 0  # MLA: the rotary part of each query/key head (shared by all heads in the KV cache)
    qk_nope_head_dim: int = 0  # MLA: the non-rotary part of each query/key head
    v_head_dim: int = 0  # MLA: the value head width
    part_precisions: tuple[Precision, ...] = ()  # one per PARTS entry; () → derived from the fields above

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

    @property
    def dense_ffn_size(self) -> int:
        """MLP width of the dense (non-MoE) layers: Llama-4's ``intermediate_size_mlp``, else ``ffn_size``."""
        return self.dense_intermediate_size or self.ffn_size

    @property
    def expert_ffn_size(self) -> int:
        """MLP width of one routed expert: ``moe_intermediate_size``, else ``ffn_size``."""
        return self.moe_intermediate_size or self.ffn_size

    @property
    def is_mla(self) -> bool:
        """Whether attention is multi-head latent attention (DeepSeek-V2/V3 style, ``kv_lora_rank`` set)."""
        return self.kv_lora_rank > 0

    @property
    def kv_bytes_per_token_per_layer(self) -> float:
        """KV-cache bytes one token takes in one layer (all heads, no tensor parallelism), in the model dtype.

        MLA caches one latent of ``kv_lora_rank + qk_rope_head_dim`` elements shared by all heads; standard attention
        caches K and V: ``2 x num_kv_heads x head_dim`` (head_dim defaulting to D / H).
        """
        if self.is_mla:
            return (self.kv_lora_rank + self.qk_rope_head_dim) * self.bytes_per_param
        head = self.head_dim or self.hidden_size // self.num_heads
        return 2 * self.num_kv_heads * head * self.bytes_per_param

    def precision(self, part: str) -> Precision:
        """Storage and compute precision of one part of the model (one of ``PARTS``).

        Configs parsed from a file carry the per-part reading of their ``quantization_config`` (module docstring).
        A ``ModelConfig`` built directly falls back to ``weight_bytes`` for the linear layers (attention, MLPs,
        experts) and the dtype for the router and the LM head, never FP8 compute.
        """
        if part not in PARTS:
            raise ValueError(f"unknown model part {part!r} (parts: {', '.join(PARTS)})")
        if self.part_precisions:
            return self.part_precisions[PARTS.index(part)]
        if part in _LINEAR_PARTS:
            return Precision(self.weight_bytes, False)
        return Precision(self.bytes_per_param, False)


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


def _layer_list(raw: dict[str, Any], key: str, layers: int, where: str) -> list[int]:
    """A list of layer indices (``moe_layers``): every entry an integer in [0, layers)."""
    value = raw[key]
    ok = isinstance(value, list) and all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < layers for i in value)
    if not ok:
        raise InputError(f"{where}: {key} must be a list of layer indices from 0 to {layers - 1}, "
                         f"got {value!r}"[:400])
    return value


def _moe_layer_indices(raw: dict[str, Any], layers: int, experts: int, where: str,
                       family: str) -> tuple[int, ...]:
    """Indices of the layers that hold the expert mixture, from the sparse-layer keys of each family."""
    if not experts:
        return ()
    explicit = raw.get("moe_layers")
    if isinstance(explicit, list) or (explicit is not None and family == "llama4"):  # Llama4TextConfig.moe_layers
        return tuple(sorted(set(_layer_list(raw, "moe_layers", layers, where))))
    dense = raw.get("mlp_only_layers")
    dense_set = {i for i in dense if isinstance(i, int)} if isinstance(dense, list) else set()
    step = _int_field(raw, "decoder_sparse_step") or 1
    first_dense = _int_field(raw, "first_k_dense_replace")
    freq_value = raw.get("moe_layer_freq")
    flags: list[Any] | None = None
    if isinstance(freq_value, list):  # a per-layer 0/1 flag list
        flags = freq_value
        if len(flags) != layers or any(f not in (0, 1) or isinstance(f, bool) for f in flags):
            raise InputError(f"{where}: moe_layer_freq must be an integer or a list of {layers} flags (0 or 1), "
                             f"got {freq_value!r}"[:400])
    freq = _int_field(raw, "moe_layer_freq") or 1
    interleave = raw.get("interleave_moe_layer_step")
    interleave_step = _int_field(raw, "interleave_moe_layer_step") if interleave is not None else 1
    out = []
    for i in range(layers):
        if i in dense_set or (i + 1) % step or i < first_dense:
            continue
        if flags is not None:
            if not flags[i]:
                continue
        elif (i - first_dense) % freq:
            continue
        if interleave_step <= 0 or (i + 1) % interleave_step:
            continue
        out.append(i)
    return tuple(out)


# quant_method -> bytes per weight when the config does not say the bit width itself
_QUANT_BYTES = {"fp8": 1.0, "fbgemm_fp8": 1.0, "ptpc_fp8": 1.0, "mxfp4": 0.5, "nvfp4": 0.5, "bitnet": 0.25}
# methods whose GEMMs run W8A8 on FP8 tensor cores (FP8 weights, dynamically quantized FP8 activations)
_FP8_COMPUTE = frozenset({"fp8", "fbgemm_fp8", "ptpc_fp8"})
# each method's ignore-list keys, in the order vLLM reads them (the first one present counts)
_IGNORE_KEYS = {
    "compressed-tensors": ("ignore",),
    "fp8": ("ignored_layers", "modules_to_not_convert"),
    "modelopt": ("exclude_modules", "ignore"),
    "modelopt_fp4": ("exclude_modules", "ignore"),
    "bitsandbytes": ("llm_int8_skip_modules",),
}
_DEFAULT_IGNORE_KEYS = ("modules_to_not_convert", "ignored_layers")
# model types whose vLLM model gives the MoE router a quantization method (vLLM 0.11: Qwen3-MoE's gate); every other
# family builds its router (Mixtral, Qwen2-MoE, DeepSeek gate, Llama-4 router) with quant_config=None
_QUANTIZED_ROUTER = frozenset({"qwen3_moe"})


def _q_error(where: str, field: str, what: str, value: Any) -> InputError:
    return InputError(f"{where}: quantization_config.{field} {what}, got {value!r}"[:400])


def _q_bits(q: dict[str, Any], key: str, where: str, field: str) -> int:
    """An optional bit width (0 when absent or null): an integer from 1 to 32."""
    value = q.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not float(value).is_integer() or not 1 <= value <= 32:
        raise _q_error(where, field, "must be an integer from 1 to 32", value)
    return int(value)


def _q_str(q: dict[str, Any], key: str, where: str, field: str) -> str:
    value = q.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _q_error(where, field, "must be a string", value)
    return value.strip().lower()


def _q_names(q: dict[str, Any], key: str, where: str, field: str) -> list[str]:
    """An optional list of module names (or patterns): a JSON list of strings."""
    value = q.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _q_error(where, field, "must be a list of module names (strings)", value)
    return value


class _NameMatcher:
    """Whether a module name is covered by a list of entries (module-name rules in the module docstring)."""

    def __init__(self, entries: Sequence[str], where: str, field: str) -> None:
        self.plain: set[str] = set()
        self.globs: list[str] = []
        self.regexes: list[re.Pattern[str]] = []
        for i, entry in enumerate(entries):
            if entry.startswith("re:"):
                try:
                    self.regexes.append(re.compile(entry[3:]))
                except (re.error, RecursionError, OverflowError) as exc:
                    raise InputError(f"{where}: quantization_config.{field}[{i}] {entry!r} is not a valid regular "
                                     f"expression ({exc})"[:400]) from None
            elif "*" in entry:
                self.globs.append(entry)
            elif entry:
                self.plain.add(entry)
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.plain or self.globs or self.regexes)

    def __call__(self, name: str) -> bool:
        hit = self._cache.get(name)
        if hit is None:
            hit = self._cache[name] = self._match(name)
        return hit

    def _match(self, name: str) -> bool:
        if self.plain:
            parts = name.split(".")
            for k in range(len(parts)):
                if ".".join(parts[k:]) in self.plain or ".".join(parts[: k + 1]) in self.plain:
                    return True
        if any(r.match(name) for r in self.regexes):
            return True
        return any(fnmatch.fnmatchcase(name, g) for g in self.globs)


@dataclass(frozen=True, slots=True)
class _Scheme:
    """One quantization scheme and the layers it targets (None: every linear layer)."""

    precision: Precision
    names: _NameMatcher | None = None  # module-name / regex targets
    classes: tuple[str, ...] = ()  # class-name targets (lower case), matched as vLLM does: contained in the class


@dataclass(frozen=True, slots=True)
class _Quant:
    """The reading of one ``quantization_config``."""

    method: str
    weight_bytes: float  # the main precision of the linear layers (``weight_bytes_per_param``)
    schemes: tuple[_Scheme, ...]
    ignore: _NameMatcher | None
    lm_head: bool  # GPTQ/AWQ-style ``lm_head: true``: the LM head is quantized too


def _compressed_tensors_schemes(q: dict[str, Any], where: str) -> list[_Scheme]:
    groups = q.get("config_groups")
    if groups is None:
        return []
    if not isinstance(groups, dict):
        raise _q_error(where, "config_groups", "must be an object of named groups", groups)
    schemes = []
    for name, group in groups.items():
        field = f"config_groups.{name}"
        if not isinstance(group, dict):
            raise _q_error(where, field, "must be an object (targets, weights, input_activations)", group)
        weights = group.get("weights")
        if weights is None:
            continue  # an activation-only group stores no weights
        if not isinstance(weights, dict):
            raise _q_error(where, f"{field}.weights", "must be an object", weights)
        acts = group.get("input_activations")
        if acts is not None and not isinstance(acts, dict):
            raise _q_error(where, f"{field}.input_activations", "must be an object or null", acts)
        bits = _q_bits(weights, "num_bits", where, f"{field}.weights.num_bits")
        if not bits:
            continue
        kind = _q_str(weights, "type", where, f"{field}.weights.type") or "int"
        act_bits = _q_bits(acts, "num_bits", where, f"{field}.input_activations.num_bits") if acts else 0
        act_kind = (_q_str(acts, "type", where, f"{field}.input_activations.type") or "int") if acts else ""
        fp8 = kind == "float" and bits == 8 and act_kind == "float" and act_bits == 8
        targets = _q_names(group, "targets", where, f"{field}.targets")
        classes = tuple(t.lower() for t in targets if not t.startswith("re:") and "." not in t and "*" not in t)
        schemes.append(_Scheme(Precision(bits / 8, fp8), _NameMatcher(targets, where, f"{field}.targets"), classes)
                       if targets else _Scheme(Precision(bits / 8, fp8)))
    return schemes


def _quantization(raw: dict[str, Any], where: str) -> _Quant | None:
    """The reading of ``quantization_config`` (None for an unquantized model); malformed fields are InputErrors."""
    q = raw.get("quantization_config")
    if q is None:
        return None
    if not isinstance(q, dict):
        raise InputError(f"{where}: quantization_config must be an object, got {q!r}"[:400])
    method = _q_str(q, "quant_method", where, "quant_method")
    bits = (_q_bits(q, "bits", where, "bits") or _q_bits(q, "w_bit", where, "w_bit")
            or _q_bits(q, "weight_bits", where, "weight_bits"))
    schemes: list[_Scheme] = []
    fp8 = method in _FP8_COMPUTE
    if method == "compressed-tensors":
        schemes = _compressed_tensors_schemes(q, where)
        if not bits:
            bits = max((round(s.precision.weight_bytes * 8) for s in schemes), default=0)
    if not bits and method == "bitsandbytes":
        bits = 4 if q.get("load_in_4bit") is True else 8 if q.get("load_in_8bit") is True else 0
    if not bits and method in ("modelopt", "modelopt_fp4"):
        inner = q.get("quantization")
        algo_src = inner if isinstance(inner, dict) and "quant_algo" not in q else q
        algo = _q_str(algo_src, "quant_algo", where, "quant_algo").upper()
        if "FP8" in algo:
            bits, fp8 = 8, True
        elif "FP4" in algo or "INT4" in algo or method == "modelopt_fp4":
            bits = 4
    if bits:
        weight_bytes = bits / 8
    elif method in _QUANT_BYTES:
        weight_bytes = _QUANT_BYTES[method]
    else:
        raise InputError(
            f"{where}: quantization_config.quant_method {method or '(missing)'!r} does not say its weight precision "
            f"(expected bits, config_groups.*.weights.num_bits, or one of {', '.join(sorted(_QUANT_BYTES))})"
        )
    if not schemes:
        schemes = [_Scheme(Precision(weight_bytes, fp8 and weight_bytes == 1.0))]
    ignore_keys = _IGNORE_KEYS.get(method, _DEFAULT_IGNORE_KEYS)
    if method in ("fbgemm_fp8", "ptpc_fp8"):
        ignore_keys = _IGNORE_KEYS["fp8"]
    entries: list[str] = []
    for key in ignore_keys:
        if q.get(key) is not None:
            entries = _q_names(q, key, where, key)
            ignore = _NameMatcher(entries, where, key)
            break
    else:
        ignore = None
    lm_head = q.get("lm_head")
    if lm_head is not None and not isinstance(lm_head, bool):
        raise _q_error(where, "lm_head", "must be true or false", lm_head)
    return _Quant(method, weight_bytes, tuple(schemes), ignore if entries else None, lm_head is True)


# Representative module names per family and part: variants of the part's projections (each a tuple of names under
# one layer prefix). A layer is covered when, for some variant, at least half of its names are.
_GENERIC_MLP = (("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),)


def _expert_names(block: str, leaves: tuple[str, str, str]) -> tuple[tuple[str, ...], ...]:
    return ((f"{block}.experts",), tuple(f"{block}.experts.0.{leaf}" for leaf in leaves))


def _shared_names(block: str) -> tuple[str, ...]:
    return tuple(f"{block}.{p}" for p in ("gate_proj", "up_proj", "down_proj"))


_FAMILY_NAMES: dict[str, dict[str, tuple[tuple[str, ...], ...]]] = {
    "llama4": {
        "dense_mlp": (("feed_forward.gate_proj", "feed_forward.up_proj", "feed_forward.down_proj"),),
        "experts": (*_expert_names("feed_forward", ("gate_proj", "up_proj", "down_proj")),
                    ("feed_forward.experts.gate_up_proj", "feed_forward.experts.down_proj")),
        "shared_expert": (_shared_names("feed_forward.shared_expert"),),
        "router": (("feed_forward.router",),),
    },
    "mixtral": {
        "dense_mlp": _GENERIC_MLP,
        "experts": _expert_names("block_sparse_moe", ("w1", "w3", "w2")),
        "shared_expert": (_shared_names("block_sparse_moe.shared_expert"),),
        "router": (("block_sparse_moe.gate",),),
    },
    "deepseek": {
        "dense_mlp": _GENERIC_MLP,
        "experts": _expert_names("mlp", ("gate_proj", "up_proj", "down_proj")),
        "shared_expert": (_shared_names("mlp.shared_experts"),),
        "router": (("mlp.gate",),),
    },
    "generic": {
        "dense_mlp": _GENERIC_MLP,
        "experts": _expert_names("mlp", ("gate_proj", "up_proj", "down_proj")),
        "shared_expert": (_shared_names("mlp.shared_expert"), _shared_names("mlp.shared_experts")),
        "router": (("mlp.gate",),),
    },
}
_ATTN_NAMES = (("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"),)
_MLA_NAMES = (("self_attn.q_a_proj", "self_attn.q_b_proj", "self_attn.kv_a_proj_with_mqa", "self_attn.kv_b_proj",
               "self_attn.o_proj"),
              ("self_attn.q_proj", "self_attn.kv_a_proj_with_mqa", "self_attn.kv_b_proj", "self_attn.o_proj"))
# vLLM's layer classes per part, for class-name targets (vLLM matches a target contained in the class name; its
# compressed-tensors MoE method uses the "Linear" group's scheme for the fused experts)
_PART_CLASSES = {
    "attn": ("qkvparallellinear", "rowparallellinear"),
    "dense_mlp": ("mergedcolumnparallellinear", "rowparallellinear"),
    "shared_expert": ("mergedcolumnparallellinear", "rowparallellinear"),
    "experts": ("fusedmoe", "linear"),
    "router": ("replicatedlinear",),
    "lm_head": ("parallellmhead",),
}


def _family(model_type: str) -> str:
    if model_type in ("llama4", "llama4_text"):
        return "llama4"
    if model_type == "mixtral":
        return "mixtral"
    if model_type.startswith("deepseek") or model_type in ("kimi_k2", "glm4_moe", "glm_moe_dsa"):
        return "deepseek"
    return "generic"


def _covered(match: Callable[[str], bool], prefixes: Sequence[str], layers: Sequence[int],
             variants: tuple[tuple[str, ...], ...]) -> bool:
    """Whether at least half of ``layers`` have at least half of one variant's names matched."""
    hits = 0
    for i in layers:
        for prefix in prefixes:
            base = prefix.format(i)
            if any(2 * sum(match(f"{base}.{n}") for n in names) >= len(names) for names in variants):
                hits += 1
                break
    return 2 * hits >= len(layers)


def _part_precisions(q: _Quant | None, model_type: str, wrapped: bool, layers: int, moe_idx: tuple[int, ...],
                     mla: bool, nbytes: float, fp8_dtype: bool) -> tuple[Precision, ...]:
    at_dtype = Precision(nbytes, False)
    if q is None:
        linear = Precision(nbytes, fp8_dtype)
        return tuple(linear if part in _LINEAR_PARTS else at_dtype for part in PARTS)
    names = _FAMILY_NAMES[_family(model_type)]
    prefixes = ("language_model.model.layers.{}", "model.language_model.layers.{}") if wrapped \
        else ("model.layers.{}",)
    moe_set = set(moe_idx)
    all_layers = tuple(range(layers))
    dense_idx = tuple(i for i in all_layers if i not in moe_set) or all_layers
    out = []
    for part in PARTS:
        if part == "router" and model_type not in _QUANTIZED_ROUTER:
            out.append(at_dtype)
            continue
        if part == "lm_head":
            lm_names = ("lm_head", "language_model.lm_head") if wrapped else ("lm_head",)
            ignored = q.ignore is not None and any(q.ignore(n) for n in lm_names)
            out.append(q.schemes[0].precision if q.lm_head and not ignored else at_dtype)
            continue
        variants = (_MLA_NAMES if mla else _ATTN_NAMES) if part == "attn" else names[part]
        idx = all_layers if part == "attn" else dense_idx if part == "dense_mlp" else (moe_idx or all_layers)
        if q.ignore is not None and _covered(q.ignore, prefixes, idx, variants):
            out.append(at_dtype)
            continue
        chosen = at_dtype  # a part no scheme targets stays unquantized
        for scheme in q.schemes:
            if scheme.names is None and not scheme.classes:
                chosen = scheme.precision
                break
            if any(t in c for t in scheme.classes for c in _PART_CLASSES[part]) or (
                    scheme.names and _covered(scheme.names, prefixes, idx, variants)):
                chosen = scheme.precision
                break
        out.append(chosen)
    return tuple(out)


# What a config.json dimension may be, physically: (smallest, largest). A key that is present (and not null) must be a
# JSON number in its range; a fraction is truncated as the reference does. Absent keys keep their defaults below.
BOUNDS: dict[str, tuple[int, int]] = {
    "num_hidden_layers": (1, 10_000),
    "hidden_size": (1, 1 << 20),
    "num_attention_heads": (1, 1 << 16),
    "num_key_value_heads": (1, 1 << 16),
    "head_dim": (1, 1 << 16),
    "intermediate_size": (0, 1 << 22),
    "intermediate_size_mlp": (0, 1 << 22),
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
    "interleave_moe_layer_step": (0, 10_000),
    "kv_lora_rank": (0, 1 << 16),
    "q_lora_rank": (0, 1 << 20),
    "qk_rope_head_dim": (0, 1 << 16),
    "qk_nope_head_dim": (0, 1 << 16),
    "v_head_dim": (0, 1 << 16),
}


_COUNTS = ("num_local_experts", "num_experts", "n_routed_experts", "num_experts_per_tok", "n_shared_experts",
           "interleave_moe_layer_step")


def _check_bounds(raw: dict[str, Any], where: str) -> None:
    for key, (lo, hi) in BOUNDS.items():
        value = raw.get(key)
        if value is None or (key == "moe_layer_freq" and isinstance(value, list)):  # the list form: checked later
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
    wrapped = isinstance(text, dict)
    if wrapped:
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
    model_type = model_type if isinstance(model_type, str) else ""
    experts = (
        _int_field(raw, "num_local_experts") or _int_field(raw, "num_experts") or _int_field(raw, "n_routed_experts")
    )
    per_token = _int_field(raw, "num_experts_per_tok") or _int_field(raw, "moe_topk")
    if experts and per_token > experts:
        raise InputError(f"{where}: num_experts_per_tok ({per_token}) exceeds the number of experts ({experts})")
    moe_idx = _moe_layer_indices(raw, layers, experts, where, _family(model_type))
    if experts and not moe_idx:  # experts declared but placed on no layer: a dense model
        experts = per_token = 0
    moe_ffn = _int_field(raw, "moe_intermediate_size")
    shared_ffn = _int_field(raw, "shared_expert_intermediate_size") or _int_field(raw, "n_shared_experts") * moe_ffn
    if not shared_ffn and experts and _family(model_type) == "llama4":
        shared_ffn = moe_ffn or ffn  # Llama-4: one shared expert as wide as a routed one on every MoE layer
    if not experts:
        shared_ffn = 0
    mla = _int_field(raw, "kv_lora_rank") > 0
    quant = _quantization(raw, where)
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
        num_experts_per_tok=per_token,
        moe_intermediate_size=moe_ffn,
        shared_expert_intermediate_size=shared_ffn,
        num_moe_layers=len(moe_idx) if experts else 0,
        weight_bytes_per_param=quant.weight_bytes if quant else 0.0,
        quantization=quant.method if quant else "",
        max_position_embeddings=_int_field(raw, "max_position_embeddings"),
        tie_word_embeddings=raw.get("tie_word_embeddings") is True,
        model_type=model_type,
        source=source,
        dense_intermediate_size=_int_field(raw, "intermediate_size_mlp"),
        kv_lora_rank=_int_field(raw, "kv_lora_rank"),
        q_lora_rank=_int_field(raw, "q_lora_rank"),
        qk_rope_head_dim=_int_field(raw, "qk_rope_head_dim"),
        qk_nope_head_dim=_int_field(raw, "qk_nope_head_dim"),
        v_head_dim=_int_field(raw, "v_head_dim"),
        part_precisions=_part_precisions(quant, model_type, wrapped, layers, moe_idx if experts else (), mla, nbytes,
                                         "fp8" in dtype or "float8" in dtype),
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
