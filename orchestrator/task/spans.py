"""The WorkflowManager's part of a traced run: a span per phase, exported from this process.

The orchestrator hands each WorkflowManager its attempt's span as W3C `TRACEPARENT` (see
orchestrator.tracing); the phases (setup, with the worktree and the setup hook inside it, agent,
verify, commit, report) become its children, and each fix-up round a `fixup` span holding the
phases of that round. Without `TRACEPARENT` (the run is not traced) nothing here imports
OpenTelemetry.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from orchestrator.tracing import TRACEPARENT, SpanRef, sdk_missing, switched_off

# Seconds this process waits for its last spans to go at its end: a reachable collector takes
# milliseconds; an unreachable one would otherwise hold up every task's end by the exporter's retries.
CLOSE_TIMEOUT = 1.0

if TYPE_CHECKING:
    from orchestrator.otel import Span, Tracing


class PhaseSpans:
    """Spans of one attempt's phases; `close()` before the process exits flushes them."""

    def __init__(self, tracing: Tracing, attempt: SpanRef, attributes: Mapping[str, Any]) -> None:
        self.tracing = tracing
        self.attempt = attempt
        self.attributes = dict(attributes)
        self.round: Span | None = None  # the fix-up round running now, parent of its phases
        self.current: Span | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], attributes: Mapping[str, Any]) -> PhaseSpans | None:
        """Spans when the orchestrator traces the run and this machine has the SDK, else None."""
        attempt = SpanRef.parse(environ.get(TRACEPARENT))
        if attempt is None or switched_off(environ) or sdk_missing() is not None:
            return None
        from orchestrator.otel import Tracing

        return cls(Tracing(attempt.trace_id), attempt, attributes)

    def phase(self, name: str) -> None:
        """The phase `name` begins (and the one before it ends); `done` only ends."""
        self._end_phase()
        if name != "done":
            self.current = self.tracing.start(name, parent=self.round or self.attempt, attributes=self.attributes)

    def fixup(self, number: int, reason: str) -> None:
        """Fix-up round `number` begins: the phases that follow are its children."""
        self._end_phase()
        if self.round is not None:
            self.round.end()
        self.round = self.tracing.start("fixup", parent=self.attempt,
                                        attributes={**self.attributes, "gadugi.round": number, "gadugi.reason": reason})

    def fail(self, description: str) -> None:
        """The phase running now is where the attempt failed."""
        from orchestrator.otel import fail

        if self.current is not None:
            fail(self.current, description)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A span inside the current phase (the worktree, the setup hook)."""
        span = self.tracing.start(name, parent=self.current or self.attempt, attributes=self.attributes)
        try:
            yield
        finally:
            span.end()

    def close(self) -> None:
        self._end_phase()
        if self.round is not None:
            self.round.end()
            self.round = None
        self.tracing.close(CLOSE_TIMEOUT)

    def _end_phase(self) -> None:
        if self.current is not None:
            self.current.end()
            self.current = None
