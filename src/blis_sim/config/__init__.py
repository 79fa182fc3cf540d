"""Configuration: validated once at the edge, frozen, then trusted by the core."""

from .models import (
    ClusterConfig,
    EngineConfig,
    LatencyConfig,
    OutputConfig,
    SimulationConfig,
    UNLIMITED_HORIZON,
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
