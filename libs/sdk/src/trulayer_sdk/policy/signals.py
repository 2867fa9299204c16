"""Live window statistics a decision may read: error rate, latency, cost, eval scores, anomalies.

The alerter publishes one summary per tenant × project × model × window length on the
compacted signals topic; the gateway materialises them and decides with them, and pushes its
tenant's to connected SDKs (``event: signals`` on the config stream) so local decisions read
the same numbers. :class:`Signals` is one tenant's view; its JSON form (:meth:`Signals.to_json`,
:meth:`Signals.from_json`) is what the stream carries. Standard library only.

A window is only meaningful while it overlaps the present: :meth:`Signals.window` returns
nothing for a window that ended more than its own length before ``now`` (a project gone quiet
says nothing about now). ``model`` ``""`` is the project's traffic of every model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class WindowStats:
    project_id: str
    model: str
    window_secs: int
    as_of: float  # unix seconds: the window's end (event time of its newest trace)
    count: int = 0
    error_rate: float | None = None  # share 0..1
    latency_p50: float | None = None  # milliseconds
    latency_p95: float | None = None
    latency_p99: float | None = None
    cost_per_call: float | None = None
    eval_scores: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "model": self.model,
            "window_secs": self.window_secs,
            "as_of": self.as_of,
            "count": self.count,
            "error_rate": self.error_rate,
            "latency_p50": self.latency_p50,
            "latency_p95": self.latency_p95,
            "latency_p99": self.latency_p99,
            "cost_per_call": self.cost_per_call,
            "eval_scores": dict(self.eval_scores),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WindowStats:
        def num(name: str) -> float | None:
            value = data.get(name)
            return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

        scores = data.get("eval_scores") or {}
        return cls(
            project_id=str(data["project_id"]),
            model=str(data.get("model", "")),
            window_secs=int(data["window_secs"]),
            as_of=float(data["as_of"]),
            count=int(data.get("count", 0)),
            error_rate=num("error_rate"),
            latency_p50=num("latency_p50"),
            latency_p95=num("latency_p95"),
            latency_p99=num("latency_p99"),
            cost_per_call=num("cost_per_call"),
            eval_scores={str(k): float(v) for k, v in scores.items() if isinstance(v, int | float)},
        )


class Signals:
    """One tenant's live windows, by (project, model, window length), and its recent anomalies
    by project (anomaly type → unix seconds of the detection window's end)."""

    __slots__ = ("_anomalies", "_windows")

    def __init__(
        self,
        windows: Iterable[WindowStats] = (),
        anomalies: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        self._windows = {(w.project_id, w.model, w.window_secs): w for w in windows}
        self._anomalies = {p: dict(a) for p, a in (anomalies or {}).items()}

    def __len__(self) -> int:
        return len(self._windows)

    def window(self, project_id: str, model: str, window_secs: int, now: float) -> WindowStats | None:
        """The window if it is known and still overlaps ``now``."""
        stats = self._windows.get((project_id, model, window_secs))
        if stats is None or stats.as_of < now - stats.window_secs:
            return None
        return stats

    def anomalies(self, project_id: str) -> Mapping[str, float]:
        return self._anomalies.get(project_id, {})

    def to_json(self) -> dict[str, Any]:
        return {
            "windows": [w.to_json() for w in self._windows.values()],
            "anomalies": self._anomalies,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Signals:
        """Entries that cannot be read are skipped (a newer gateway may send more)."""
        windows = []
        for item in data.get("windows") or []:
            try:
                windows.append(WindowStats.from_json(item))
            except (KeyError, TypeError, ValueError):
                continue
        anomalies: dict[str, dict[str, float]] = {}
        raw = data.get("anomalies") or {}
        if isinstance(raw, Mapping):
            for project, found in raw.items():
                if isinstance(found, Mapping):
                    anomalies[str(project)] = {str(k): float(v) for k, v in found.items() if isinstance(v, int | float)}
        return cls(windows, anomalies)


NO_SIGNALS = Signals()
