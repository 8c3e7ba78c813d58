"""The OpenTelemetry SDK set up for one process of a traced run (the orchestrator, or a
WorkflowManager): OTLP over HTTP as the standard `OTEL_*` variables configure it, in batches
from a bounded queue, each export bounded in time.

Importing this module imports the SDK: only code that found tracing on (see orchestrator.tracing)
imports it. A collector that is down or slow never affects the run: the first failed export is
one warning, the SDK's own log lines are silenced, and the flush at the end has a time limit
(none at all when nothing takes the connection).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, Status, StatusCode, TraceFlags

from orchestrator.tracing import SpanRef

log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "gadugi-orchestrator"
EXPORT_TIMEOUT = 5.0  # seconds for one export request, unless OTEL_EXPORTER_OTLP_TIMEOUT says otherwise
# Seconds the last spans get at the end of the process: far more than a reachable collector
# needs, and what one that takes the connection but does not answer costs (the exporter's retries
# are cut off then). One that refuses it costs nothing (see `_refused`).
CLOSE_TIMEOUT = 2.0
PROBE_TIMEOUT = 0.5  # seconds to connect to the collector before the last flush
MAX_QUEUE = 4096  # spans waiting for export; beyond this new ones are dropped, never blocking the run
QUIET_AFTER_FAILURE = 10.0  # seconds exports are skipped after one failed, so a dead collector costs nothing

__all__ = ["Span", "Tracing", "fail", "preload"]


class _RunIds(IdGenerator):
    """Every root span of this process is in the run's trace, and the next span id can be chosen
    ahead (see SpanRef.derived): that is how spans made here get the ids others expect."""

    def __init__(self, trace_id: str) -> None:
        self.trace_id = int(trace_id, 16)
        self.chosen: int | None = None
        self._random = RandomIdGenerator()

    def generate_trace_id(self) -> int:
        return self.trace_id

    def generate_span_id(self) -> int:
        chosen, self.chosen = self.chosen, None
        return chosen if chosen is not None else self._random.generate_span_id()


class _Forgiving(SpanExporter):
    """The OTLP exporter, warning once when exports fail and then sparing the run the retries."""

    def __init__(self, inner: SpanExporter, where: str) -> None:
        self.inner = inner
        self.where = where
        self.warned = False
        self._quiet_until = 0.0
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if time.monotonic() < self._quiet_until:
            return SpanExportResult.FAILURE
        try:
            result = self.inner.export(spans)
        except Exception:  # noqa: BLE001 - an exporter bug must not reach the run either
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            self._quiet_until = time.monotonic() + QUIET_AFTER_FAILURE
            self.warn("failed")
        return result

    def warn(self, what: str) -> None:
        """The one warning of this process about its exports."""
        with self._lock:
            if self.warned:
                return
            self.warned = True
        log.warning("trace export to %s %s; the run goes on (later failures are not reported)", self.where, what)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class Tracing:
    """This process's tracer provider, exporting spans of the run's trace `trace_id`."""

    def __init__(self, trace_id: str) -> None:
        env = os.environ  # where the SDK and its exporter read their settings from
        # The SDK logs every failed export (and its retries) as errors: one warning of ours says it.
        logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
        self.ids = _RunIds(trace_id)
        self.provider = TracerProvider(resource=Resource.create(_resource_defaults(env)), id_generator=self.ids)
        timeout = None if env.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or env.get("OTEL_EXPORTER_OTLP_TIMEOUT") \
            else EXPORT_TIMEOUT
        exporter = OTLPSpanExporter(timeout=timeout)
        self.exporter = _Forgiving(exporter, getattr(exporter, "_endpoint", "the OTLP endpoint"))
        self.provider.add_span_processor(BatchSpanProcessor(
            self.exporter, max_queue_size=MAX_QUEUE, export_timeout_millis=EXPORT_TIMEOUT * 1000))
        self.tracer = self.provider.get_tracer("gadugi-orchestrator")

    def start(self, name: str, *, parent: SpanRef | Span | None = None, span_id: str | None = None,
              attributes: Mapping[str, Any] | None = None, links: Sequence[SpanRef | Span] = (),
              start_time: int | None = None) -> Span:
        """A span named `name` under `parent` (a live span here, or one of another process or
        of an earlier one), with the id `span_id` when given."""
        context = trace.set_span_in_context(_as_span(parent)) if parent is not None else None
        self.ids.chosen = int(span_id, 16) if span_id else None
        try:
            return self.tracer.start_span(name, context=context, attributes=_clean(attributes),
                                          links=[Link(_as_span(to).get_span_context()) for to in links],
                                          start_time=start_time)
        finally:
            self.ids.chosen = None

    def close(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """Export what is left for at most `timeout` seconds; True when it all went.

        A collector nothing can connect to gets no flush: the exporter would retry it for the
        whole limit, and every WorkflowManager's end, so every dependent task's start, would wait
        that long."""
        refused = _refused(self.exporter.where)
        if refused is not None:
            self.exporter.warn(f"failed ({refused})")
            self.exporter.shutdown()  # what is queued, or waiting to be retried, is dropped at once
        finished = threading.Event()

        def flush() -> None:
            try:
                self.provider.force_flush(int(timeout * 1000))
                self.provider.shutdown()
            finally:
                finished.set()

        threading.Thread(target=flush, daemon=True, name="trace-flush").start()
        if finished.wait(timeout):
            return not self.exporter.warned
        # Still retrying an unreachable collector: its shutdown ends the retries' waits at once.
        self.exporter.warn(f"did not finish within {timeout:g}s")
        self.exporter.shutdown()
        return False


def _refused(endpoint: str) -> str | None:
    """Why no connection can be made to `endpoint` (or to the proxy the exporter would go
    through), when the attempt says so at once; None when one can, or it could not tell in time."""
    url = urllib.parse.urlsplit(endpoint)
    host, port = _host_port(url)
    proxy = urllib.request.getproxies().get(url.scheme)
    if host is not None and proxy and not urllib.request.proxy_bypass(host):
        host, port = _host_port(urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}"))
    if host is None:
        return None
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT):
            return None
    except TimeoutError:
        return None  # slow, perhaps not down: the flush has its own limit
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def _host_port(url: urllib.parse.SplitResult) -> tuple[str | None, int]:
    return url.hostname, url.port or (443 if url.scheme == "https" else 80)


def preload() -> None:
    """Import what the exporter imports only when one is made (its HTTP stack), by making one: for
    a process that forks many traced ones. It starts no thread and sends nothing."""
    OTLPSpanExporter(timeout=EXPORT_TIMEOUT).shutdown()


def fail(span: Span, description: str | None) -> None:
    span.set_status(Status(StatusCode.ERROR, description or None))


def _as_span(what: SpanRef | Span) -> Span:
    if isinstance(what, SpanRef):
        return NonRecordingSpan(SpanContext(int(what.trace_id, 16), int(what.span_id, 16), is_remote=True,
                                            trace_flags=TraceFlags(TraceFlags.SAMPLED)))
    return what


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attribute values the SDK takes (it drops None and warns); a None is left out."""
    return {k: v for k, v in (attributes or {}).items() if v is not None}


def _resource_defaults(env: Mapping[str, str]) -> dict[str, str]:
    """`service.name` is ours unless the user named the service (OTEL_SERVICE_NAME, or
    OTEL_RESOURCE_ATTRIBUTES), which Resource.create reads itself."""
    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    return {} if named else {SERVICE_NAME: DEFAULT_SERVICE_NAME}
