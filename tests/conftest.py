"""Shared pytest configuration of the whole suite."""

from hypothesis import HealthCheck, settings

# `pytest -m fuzz --hypothesis-profile long`: the fuzz suites with many more examples and no deadline (local use; the
# default profile keeps CI short).
settings.register_profile("long", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
