"""Observers that record a run for later reading: the decision trace (ENGINE.md §12.1)."""
