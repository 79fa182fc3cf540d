"""KV-cache capacity from GPU memory: the number of blocks vLLM would allocate (its start-up memory profile).

vLLM sizes its KV cache once, at start-up, per GPU::

    kv_bytes   = visible memory x gpu_memory_utilization - weights - activation peak - non-torch memory
    num_blocks = floor(kv_bytes / (num_layers x bytes per block and layer))
    bytes per block and layer = 2 (K and V) x block_size x KV heads per rank x head_dim x KV dtype bytes

(multi-head latent attention, DeepSeek's MLA, caches one latent of ``kv_lora_rank + qk_rope_head_dim`` per token and
layer instead, which every tensor-parallel rank holds whole)

and logs ``num_gpu_blocks``. One of those blocks is its reserved null block, so the simulator's usable count
(``--total-kv-blocks``, ENGINE.md §8.1) is ``num_gpu_blocks - 1``.

What is not in a config file is estimated with three constants, fitted to the six vLLM 0.11 logs in the shared
ground truth (H100 80 GB; Llama-2-7B, CodeLlama-34B at two token budgets, Qwen2.5-7B) and documented in the README:

* the memory CUDA reports is 99% of the datasheet figure (an H100 "80 GB" shows 79.2 GiB);
* non-torch memory (CUDA context, cuBLAS/NCCL workspaces) is 0.24 GiB;
* the activation peak of the profiling pass, which runs one batch of ``max_num_batched_tokens`` tokens, is 4.5 MLP
  widths per token in the activation dtype (gate and up projections, the gated product and temporaries).

CUDA-graph memory is captured after the KV cache is sized in vLLM 0.11 and is not subtracted. A GPU whose datasheet
quotes decimal gigabytes of GDDR memory (L40S) is overestimated by a few percent: pass ``--total-kv-blocks`` there.

``resolve_kv_blocks`` is the one place a run's block count is decided (``blis run``'s roofline resolution and
``blis evaluate``'s experiments both call it): a stated count, else a count vLLM logged, else this derivation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import InputError
from .hardware import HardwareCalib
from .hf_config import ModelConfig

GIB = 1 << 30
VISIBLE_MEMORY_FRACTION = 0.99  # of the datasheet memory, as reported by CUDA to the process
NON_TORCH_GIB = 0.24
ACTIVATION_MLP_WIDTHS = 4.5  # activation peak per batched token, in MLP widths (per rank) of activation dtype
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9  # vLLM's default

# Architectures whose MLP has two matrices (up, down) instead of the gated three (gate, up, down).
_UNGATED_MLP = frozenset({"gpt2", "gpt_neox", "gpt_bigcode", "opt", "falcon", "bloom", "phi", "starcoder2", "gptj"})


@dataclass(frozen=True, slots=True)
class KVCapacity:
    """The derivation's figures (GiB per GPU) and its result."""

    visible_gib: float
    budget_gib: float  # visible x gpu_memory_utilization
    weights_gib: float
    activation_gib: float
    non_torch_gib: float
    kv_gib: float
    bytes_per_block: int  # all layers of one block on one GPU
    num_gpu_blocks: int  # what vLLM logs (includes the null block)

    @property
    def usable_blocks(self) -> int:
        """Blocks the simulator may use: vLLM's count less its null block."""
        return self.num_gpu_blocks - 1

    def describe(self) -> dict:
        return {**asdict(self), "usable_blocks": self.usable_blocks}


def head_dim(m: ModelConfig) -> int:
    """The attention head size: the config's ``head_dim`` when given, else hidden_size / heads."""
    return m.head_dim or m.hidden_size // m.num_heads


def kv_heads_per_rank(m: ModelConfig, tp: int) -> int:
    """KV heads one GPU holds; vLLM replicates KV heads when TP exceeds their number."""
    return max(1, math.ceil(m.num_kv_heads / tp))


def kv_bytes_per_block(m: ModelConfig, tp: int, block_size: int) -> int:
    """Bytes of one KV block over all layers on one GPU (K and V, KV cache in the activation dtype). An MLA model
    caches its latent (``ModelConfig.kv_bytes_per_token_per_layer``), replicated on every rank."""
    if m.is_mla:
        return block_size * (m.kv_lora_rank + m.qk_rope_head_dim) * int(activation_bytes(m)) * m.num_layers
    return 2 * block_size * kv_heads_per_rank(m, tp) * head_dim(m) * int(activation_bytes(m)) * m.num_layers


def activation_bytes(m: ModelConfig) -> float:
    """Bytes per activation and KV element: the model dtype, at least 16-bit (8-bit dtypes compute in bf16)."""
    return max(2.0, m.bytes_per_param)


def attention_params_per_gpu(m: ModelConfig, tp: int) -> float:
    """Attention weights of one layer on one GPU. Standard attention: Q and O sharded, K and V sharded over the KV
    heads (replicated where TP exceeds them). MLA (vLLM's DeepSeek layout): the query down-projection (or the full
    query projection when ``q_lora_rank`` is 0) and the KV down-projection with its rotary key are replicated, the
    query and KV up-projections and O are sharded."""
    D = m.hidden_size
    if m.is_mla:
        H, rope = m.num_heads, m.qk_rope_head_dim
        qk_head = m.qk_nope_head_dim + rope
        v_head = m.v_head_dim or m.qk_nope_head_dim
        q = (D * m.q_lora_rank + m.q_lora_rank * H * qk_head / tp) if m.q_lora_rank else D * H * qk_head / tp
        kv = D * (m.kv_lora_rank + rope) + m.kv_lora_rank * H * (m.qk_nope_head_dim + v_head) / tp
        return q + kv + H * v_head * D / tp
    dh = head_dim(m)
    return 2 * D * m.num_heads * dh / tp + 2 * D * kv_heads_per_rank(m, tp) * dh


def weight_bytes_per_gpu(m: ModelConfig, tp: int) -> float:
    """Weights one GPU holds under tensor parallelism: linear layers sharded (KV heads replicated where TP exceeds
    them), embeddings and LM head vocabulary-sharded, routers and norms replicated. Each part counts at its own
    precision (``ModelConfig.precision``: a quantized checkpoint's ignore list keeps some parts at the model dtype);
    the embeddings and norms are always at the model dtype. Dense layers use the dense MLP width (Llama-4's
    ``intermediate_size_mlp``), MoE layers every routed expert plus the shared expert(s) and the router."""
    D, L = m.hidden_size, m.num_layers
    b = m.bytes_per_param
    mats = 2 if m.model_type in _UNGATED_MLP else 3
    moe_layers = m.moe_layers
    total = L * attention_params_per_gpu(m, tp) * m.precision("attn").weight_bytes
    total += (L - moe_layers) * mats * D * m.dense_ffn_size / tp * m.precision("dense_mlp").weight_bytes
    if moe_layers:
        total += moe_layers * m.num_experts * mats * D * m.expert_ffn_size / tp * m.precision("experts").weight_bytes
        total += (moe_layers * mats * D * m.shared_expert_intermediate_size / tp
                  * m.precision("shared_expert").weight_bytes)
        total += moe_layers * D * m.num_experts * m.precision("router").weight_bytes
    embed = m.vocab_size * D / tp
    total += embed * b + (0.0 if m.tie_word_embeddings else embed * m.precision("lm_head").weight_bytes)
    norms = (2 * L + 1) * D + (L * (m.kv_lora_rank + m.q_lora_rank) if m.is_mla else 0)
    return total + norms * b


def activation_peak_bytes(m: ModelConfig, tp: int, max_num_batched_tokens: int) -> float:
    """Peak activation memory of vLLM's profiling pass (one batch of ``max_num_batched_tokens`` tokens)."""
    width = m.dense_ffn_size / tp if m.moe_layers < m.num_layers else 0.0
    if m.moe_layers:
        expert = m.expert_ffn_size * max(1, m.num_experts_per_tok)
        width = max(width, (expert + m.shared_expert_intermediate_size) / tp)
    return ACTIVATION_MLP_WIDTHS * width * activation_bytes(m) * max_num_batched_tokens


def derive_kv_capacity(
    m: ModelConfig,
    memory_gb: float,
    tp: int,
    *,
    block_size: int = 16,
    max_num_batched_tokens: int = 2048,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    gpu: str = "GPU",
) -> KVCapacity:
    """The KV blocks vLLM allocates per GPU for model ``m`` at TP ``tp`` on a GPU of ``memory_gb`` (datasheet GB).

    Raises ``InputError`` when the weights and activations leave no room for even one block (vLLM refuses to start).
    """
    if not (memory_gb and math.isfinite(memory_gb) and memory_gb > 0):
        raise InputError(f"hardware config {gpu}: memoryGB must be a positive number to derive the KV capacity, "
                         f"got {memory_gb!r} (or pass --total-kv-blocks)")
    if tp < 1:
        raise InputError(f"--tp must be >= 1 to derive the KV capacity, got {tp}")
    visible = memory_gb * VISIBLE_MEMORY_FRACTION * GIB
    budget = visible * gpu_memory_utilization
    weights = weight_bytes_per_gpu(m, tp)
    activation = activation_peak_bytes(m, tp, max_num_batched_tokens)
    non_torch = NON_TORCH_GIB * GIB
    kv = budget - weights - activation - non_torch
    per_block = kv_bytes_per_block(m, tp, block_size)
    blocks = int(kv // per_block) if kv > 0 else 0
    if blocks < 2:
        raise InputError(
            f"{m.source or 'model'} does not fit on {gpu} at TP {tp}: {budget / GIB:.2f} GiB usable "
            f"({memory_gb:g} GB x {VISIBLE_MEMORY_FRACTION} x gpu_memory_utilization {gpu_memory_utilization:g}) "
            f"minus {weights / GIB:.2f} GiB of weights and {(activation + non_torch) / GIB:.2f} GiB of activations "
            f"leaves no KV cache (raise --tp, or pass --total-kv-blocks)"
        )
    return KVCapacity(
        visible_gib=visible / GIB,
        budget_gib=budget / GIB,
        weights_gib=weights / GIB,
        activation_gib=activation / GIB,
        non_torch_gib=NON_TORCH_GIB,
        kv_gib=kv / GIB,
        bytes_per_block=per_block,
        num_gpu_blocks=blocks,
    )


@dataclass(frozen=True, slots=True)
class KVBlocks:
    """The KV blocks of one instance and where the count came from."""

    usable: int  # the simulator's --total-kv-blocks
    logged: int | None  # vLLM's num_gpu_blocks (its null block included) as logged or derived; None when stated
    source: str  # for reports: the count's origin
    derived: KVCapacity | None = None  # the derivation, when the count comes from GPU memory


def resolve_kv_blocks(
    m: ModelConfig,
    hw: HardwareCalib,
    tp: int,
    *,
    block_size: int,
    max_num_batched_tokens: int,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    stated: int | None = None,
    logged: int | None = None,
    logged_source: str = "",
    without_memory: int | None = None,
) -> KVBlocks:
    """The usable KV blocks of one instance of model ``m`` at TP ``tp`` on GPU entry ``hw``, first of:

    1. ``stated``: a count given as such (``--total-kv-blocks``), used as is;
    2. ``logged``: vLLM's ``num_gpu_blocks`` as a measurement recorded it (``logged_source``), less the null block;
    3. ``without_memory`` when the entry has no ``memoryGB`` (``blis run`` keeps its default count);
    4. the derivation from the entry's ``memoryGB`` (``derive_kv_capacity``), which raises ``InputError`` when the
       entry has no usable memory figure or the model leaves no room for a KV cache.
    """
    if stated is not None:
        return KVBlocks(stated, None, "stated (--total-kv-blocks)")
    if logged is not None:
        return KVBlocks(logged - 1, logged, f"{logged_source} (logged {logged} - 1 null block)")
    if hw.memory_gb is None and without_memory is not None:
        return KVBlocks(without_memory, None, f"default ({hw.name} has no memoryGB)")
    cap = derive_kv_capacity(m, hw.memory_gb or 0.0, tp, block_size=block_size,
                             max_num_batched_tokens=max_num_batched_tokens,
                             gpu_memory_utilization=gpu_memory_utilization, gpu=hw.name)
    return KVBlocks(cap.usable_blocks, cap.num_gpu_blocks,
                    f"derived from {hw.name} memory ({cap.kv_gib:.2f} GiB of KV cache)", cap)
