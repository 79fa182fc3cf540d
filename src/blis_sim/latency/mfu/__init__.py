"""Kernel times for roofline v2: the measured tables of ``--bench-data-path`` (``tables``, ``lookup``), the shipped
fitted efficiency model (``fitted``) and the collector behind ``blis bench-mfu`` (``bench``)."""
