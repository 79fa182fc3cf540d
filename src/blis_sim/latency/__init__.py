"""Latency models (ENGINE.md §9, ROOFLINE.md): blackbox α/β regression, roofline v1 and roofline v2 (kernel times
from measured tables, ``mfu/``, or the shipped fitted efficiency model), chosen by ``select``.

Submodules are imported where used (``from blis_sim.latency.select import resolve_latency``) so that importing the
engine, which needs only ``base``, does not pull in file parsing.
"""
