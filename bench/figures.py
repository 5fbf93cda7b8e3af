"""The summary every benchmark prints for a series of measurements."""

from __future__ import annotations

import statistics


def summary(values: list[float], digits: int = 4, scale: float = 1.0) -> dict[str, float]:
    """n, p50 (also as median), p99, max and min of ``values`` times ``scale``."""
    ordered = sorted(v * scale for v in values)
    if not ordered:
        return {"n": 0}
    p50 = round(statistics.median(ordered), digits)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"n": len(ordered), "p50": p50, "median": p50, "p99": round(p99, digits),
            "max": round(ordered[-1], digits), "min": round(ordered[0], digits)}
