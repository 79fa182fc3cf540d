"""Priority inversions (ENGINE.md §12.3), counted in O(n log n).

Within one group (an instance and an SLO class), take the completed requests in arrival order (ties by index) and
count the pairs i < j where the earlier request took more than twice as long end to end: ``e2e_i > 2 * e2e_j``. A
Fenwick tree over the ranks of the E2E values counts, for each j, the earlier requests above ``2 * e2e_j``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable


def count_inversions(e2es: list[int]) -> int:
    """Pairs i < j with ``e2es[i] > 2 * e2es[j]`` (the list in arrival order)."""
    values = sorted(set(e2es))
    size = len(values)
    tree = [0] * (size + 1)  # Fenwick tree of counts by rank (1-based)
    seen = 0
    total = 0
    for e in e2es:
        # earlier requests with e2e <= 2e: prefix count up to the rank of the largest value <= 2e
        pos = bisect_right(values, 2 * e)
        below = 0
        while pos > 0:
            below += tree[pos]
            pos &= pos - 1
        total += seen - below
        pos = bisect_right(values, e)  # the rank of e itself (1-based)
        while pos <= size:
            tree[pos] += 1
            pos += pos & -pos
        seen += 1
    return total


def priority_inversions(rows: Iterable[tuple[int, str, int, int, int]]) -> int:
    """Sum over (instance, SLO class) groups; ``rows`` are (instance, slo_class, arrival, index, e2e) of completed
    requests (an empty class is ``default``)."""
    groups: dict[tuple[int, str], list[tuple[int, int, int]]] = {}
    for instance, slo, arrival, index, e2e in rows:
        groups.setdefault((instance, slo or "default"), []).append((arrival, index, e2e))
    total = 0
    for group in groups.values():
        group.sort()
        total += count_inversions([e for _, _, e in group])
    return total
