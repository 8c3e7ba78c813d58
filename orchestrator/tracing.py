"""Traces of a run: when they are on, and how the processes of a run agree on span ids.

The orchestrator and every WorkflowManager export their own spans; they meet in one trace
because they share ids, never a live object. The run's trace id and the span id of its first
root are drawn at run start and kept in the journal (`run_started`), so a resumed run continues
the same trace. An attempt's span id is derived from the run's ids and the attempt, so the
backend that starts a WorkflowManager can hand it its parent (W3C `TRACEPARENT` in its
environment) before the orchestrator's observer has made that span.

Nothing here imports OpenTelemetry: a run without tracing pays nothing for it. `orchestrator.otel`
holds the SDK set-up and is imported only once tracing is on.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

TRACEPARENT = "TRACEPARENT"
TRACESTATE = "TRACESTATE"
INSTALL_HINT = "pip install 'gadugi-orchestrator[otel]'"
# Either one means the user has a collector and wants this run's spans sent there.
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def switched_off(environ: Mapping[str, str]) -> bool:
    """The standard variables that turn the SDK or its trace export off win over everything."""
    return (environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
            or environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none")


def wanted(flag: bool, environ: Mapping[str, str]) -> bool:
    """Tracing is on with --otel or an OTLP endpoint in the environment, unless switched off."""
    return not switched_off(environ) and (flag or any(environ.get(name) for name in ENDPOINT_VARIABLES))


def sdk_missing() -> str | None:
    """Why the OpenTelemetry packages cannot be used here, or None when they can. Imports them."""
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as exc:
        return str(exc) or type(exc).__name__
    return None


@dataclass(frozen=True)
class SpanRef:
    """A span by its W3C ids, lower-case hex: the run's anchor, or an attempt's span."""

    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits

    @classmethod
    def new(cls) -> SpanRef:
        return cls(secrets.token_hex(16), secrets.token_hex(8))

    @classmethod
    def parse(cls, traceparent: str | None) -> SpanRef | None:
        """The span a W3C `traceparent` value names; None for a missing or malformed one."""
        found = _TRACEPARENT.match((traceparent or "").strip().lower())
        if found is None or set(found[1]) == {"0"} or set(found[2]) == {"0"}:
            return None
        return cls(found[1], found[2])

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-01"  # sampled: a run traced is traced whole

    def derived(self, *parts: str) -> SpanRef:
        """A span id in this trace that anyone who knows the parts computes alike."""
        digest = hashlib.sha256("\0".join((self.trace_id, self.span_id, *parts)).encode()).hexdigest()[:16]
        return SpanRef(self.trace_id, digest if set(digest) != {"0"} else "1" * 16)


def attempt_span(run: SpanRef, task_id: str, attempt: int) -> SpanRef:
    """The span of a task's attempt (attempt numbers never repeat within a run, across resumes)."""
    return run.derived("attempt", task_id, str(attempt))


def handoff_env(env: Mapping[str, str], run: SpanRef | None, task_id: str, attempt: int) -> dict[str, str]:
    """The environment a WorkflowManager starts with: its attempt's span as `TRACEPARENT` when the
    run is traced. Otherwise an inherited `TRACEPARENT` is dropped: it would make the
    WorkflowManager trace into someone else's trace."""
    out = {k: v for k, v in env.items() if k not in (TRACEPARENT, TRACESTATE)}
    if run is not None:
        out[TRACEPARENT] = attempt_span(run, task_id, attempt).traceparent
    return out


def exporter_env(env: Mapping[str, str]) -> dict[str, str]:
    """The standard OpenTelemetry variables set here: what a remote worker needs to export to the
    same collector (only those are forwarded; the worker keeps its own environment otherwise)."""
    return {k: v for k, v in env.items() if k.startswith("OTEL_")}
