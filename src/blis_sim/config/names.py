"""Every name set the command line and the configuration accept, defined once.

The configuration models validate against these tuples and the CLI lists them in --help. Where a name is bound to
code (a policy class, a latency model), the binding lives with the code, in a table keyed by the same names
(``cluster.policies.ADMISSION_POLICIES`` and ``ROUTING_POLICIES``, ``engine.policy.SCHEDULING_POLICIES`` and
``PRIORITY_POLICIES``, ``latency.select``); a name accepted here but missing from its table is refused at run time as
"not available in this version yet", so a feature issue adds its names to a table, not to a list of exceptions.
"""

from __future__ import annotations

# workload sources (ENGINE.md §10.1) and the presets among them, read from the defaults file's ``workloads`` section
PRESETS = ("chatbot", "contentgen", "multidoc", "summarization")
WORKLOADS = ("chatbot", "contentgen", "distribution", "multidoc", "summarization", "traces")
ARRIVAL_PROCESSES = ("constant", "poisson")

# control plane and per-instance policies (§11)
ADMISSION_POLICIES = ("always-admit", "token-bucket", "reject-all")
ROUTING_POLICIES = ("round-robin", "least-loaded", "weighted", "prefix-affinity", "always-busiest")
PRIORITY_POLICIES = ("constant", "slo-based", "inverted-slo")
# the reference's schedulers, and vLLM 0.15.1's own --scheduling-policy priority (a heap by (priority, arrival time))
SCHEDULERS = ("fcfs", "priority-fcfs", "sjf", "reverse-priority", "vllm-priority")
# weighted routing's scorers (§11.2) and the profile used when neither --routing-scorers nor a bundle names any
SCORERS = ("prefix-affinity", "queue-depth", "kv-utilization", "load-balance")
DEFAULT_SCORERS = (("prefix-affinity", 3.0), ("queue-depth", 2.0), ("kv-utilization", 2.0))

# the CPU KV tier (§8.6): the reference's offload-on-eviction model, or vLLM 0.15.1's offloading connector
KV_OFFLOAD_MODES = ("reference", "vllm")

# observability (§12)
TRACE_LEVELS = ("none", "decisions")

# latency models (§9.3): "auto" picks one of the others from the inputs given
LATENCY_MODELS = ("auto", "best", "blackbox", "roofline-v1", "roofline-v2")
ROOFLINE_MODELS = ("roofline-v1", "roofline-v2")

# the GPU assumed where nothing names one (blis evaluate and calibrate); GPUs themselves are the entries of the
# hardware config (data/hardware_config.json or --hardware-config)
DEFAULT_GPU = "H100"

# stderr log levels (the reference's spellings; logging_setup maps them to Python's levels)
LOG_LEVELS = ("debug", "info", "warn", "warning", "error", "trace", "fatal", "panic")
