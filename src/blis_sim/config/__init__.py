"""Configuration: validated once at the edge, frozen, then trusted by the core."""

from .models import (
    UNLIMITED_HORIZON,
    ClusterConfig,
    EngineConfig,
    LatencyConfig,
    OutputConfig,
    SimulationConfig,
    WorkloadConfig,
)

__all__ = [
    "ClusterConfig",
    "EngineConfig",
    "LatencyConfig",
    "OutputConfig",
    "SimulationConfig",
    "UNLIMITED_HORIZON",
    "WorkloadConfig",
]
