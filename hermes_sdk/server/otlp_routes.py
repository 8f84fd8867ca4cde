"""OTLP/HTTP traces receiver: ``POST /v1/traces`` learns runs from OpenTelemetry spans.

Bodies are ``application/x-protobuf`` (the OTLP default) or ``application/json``; anything else
is 415. Spans are mapped to units and assembled into runs by :mod:`hermes_sdk.otlp` and learned
into the tenant's graphs (the tenant is the API key's, as for every write). Malformed spans are
counted and skipped (OTLP ``partial_success``), a malformed body is 400, an oversized one 413.

The receiver also feeds the scheduler's run state: a trace seen for the first time starts a run
whose id is the trace id (32 hex digits), its provisional top-level units move the run through
its graph, and its end ends the run; so a gateway request carrying the trace's W3C
``traceparent`` is ranked as that run. Open traces are closed after ``idle_timeout_s`` by a
background task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Final, cast

from aiohttp import web
from prometheus_client import Counter, Gauge

from hermes_sdk.errors import InvalidRequest
from hermes_sdk.otlp import (
    CONTENT_TYPES,
    PROTOBUF,
    AssemblyOutput,
    DecodeResult,
    OtlpDecodeError,
    OtlpUnavailable,
    SpanMapping,
    TraceAssembler,
    decode,
)
from hermes_sdk.otlp.mapping import mapping_from_env
from hermes_sdk.server.auth import TENANT
from hermes_sdk.server.middlewares import ApiError, loads_json
from hermes_sdk.server.scheduler import SCHEDULER, Scheduler
from hermes_sdk.server.wire import Event, RunEnd, RunStart, UnitEnd, UnitStart

log = logging.getLogger("hermes_sdk.server.otlp")

OFF_LOOP_BYTES: Final = 256 * 1024
"""Bodies larger than this are decoded in a worker thread (the loop keeps admitting)."""
EXPIRE_EVERY_S: Final = 1.0

routes = web.RouteTableDef()


class OtlpReceiver:
    """The assembler of one server, its counters, and how its output reaches the scheduler."""

    def __init__(self, scheduler: Scheduler, mapping: SpanMapping) -> None:
        self.scheduler = scheduler
        self.mapping = mapping
        self.assembler = TraceAssembler(mapping, live=True)
        r = scheduler.metrics.registry
        self.spans = Counter(
            "hermes_otlp_spans",
            "OTLP spans received, by outcome (accepted, or the reason they were ignored)",
            ["outcome"],
            registry=r,
        )
        self.runs = Counter(
            "hermes_otlp_runs",
            "Runs assembled from traces, by outcome (learned, timed_out, or why not learned)",
            ["outcome"],
            registry=r,
        )
        self.open_traces = Gauge("hermes_otlp_open_traces", "Traces waiting for a root", registry=r)
        # last counter snapshot: spans received, runs timed out, spans ignored, run outcomes
        self._seen: tuple[int, int, dict[str, int], dict[str, int]] = (0, 0, {}, {})

    def configure(self, mapping: SpanMapping) -> None:
        """Use ``mapping`` from now on (traces already open keep their spans)."""
        self.mapping = self.assembler.mapping = mapping

    def count(self, decoded: DecodeResult | None = None) -> None:
        """Export the assembler's counters (and a request's malformed spans) to Prometheus."""
        if decoded is not None:
            for reason, n in decoded.ignored.items():
                self.spans.labels(reason).inc(n)
        st = self.assembler.stats
        received, timed_out, ignored, not_learned = self._seen
        ignored_now = dict(st.spans_ignored)
        not_learned_now = {**st.runs_not_learned, "learned": st.runs_learned}
        accepted = (st.spans_received - received) - (
            sum(ignored_now.values()) - sum(ignored.values())
        )
        if accepted > 0:
            self.spans.labels("accepted").inc(accepted)
        for reason, n in ignored_now.items():
            if n > ignored.get(reason, 0):
                self.spans.labels(reason).inc(n - ignored.get(reason, 0))
        for reason, n in not_learned_now.items():
            if n > not_learned.get(reason, 0):
                self.runs.labels(reason).inc(n - not_learned.get(reason, 0))
        if st.runs_timed_out > timed_out:
            self.runs.labels("timed_out").inc(st.runs_timed_out - timed_out)
        self._seen = (st.spans_received, st.runs_timed_out, ignored_now, not_learned_now)
        self.open_traces.set(self.assembler.open_traces)

    async def apply(self, tenant: str, out: AssemblyOutput) -> None:
        """Feed the scheduler: live run state, then learned paths (stored before returning)."""
        events: list[Event] = [RunStart(run_id=r, app=a) for r, a in out.started]
        for u in out.live:
            events.append(
                UnitStart(
                    run_id=u.run_id,
                    unit_id=u.unit_id,
                    node=u.node,
                    kind=u.kind,  # type: ignore[arg-type]  # a UnitKind by construction
                    backend=u.backend,
                    input_tokens=u.input_tokens,
                )
            )
            events.append(
                UnitEnd(
                    run_id=u.run_id,
                    unit_id=u.unit_id,
                    service_s=u.service_s,
                    input_tokens=u.input_tokens,
                    output_tokens=u.output_tokens,
                    failed=u.failed,
                )
            )
        events.extend(RunEnd(run_id=r, failed=True) for t, r in out.ended if t == tenant)
        ends = [RunEnd(run_id=p.run_id, failed=p.failed, path=p) for p in out.paths]
        sched = self.scheduler
        try:
            await sched.apply_async(tenant, events + cast(list[Event], ends))
        except InvalidRequest:  # a path its graph refuses: learn the others, end the runs
            await sched.apply_async(tenant, events)
            for end in ends:
                try:
                    await sched.apply_async(tenant, [end])
                except InvalidRequest as exc:
                    log.warning("trace %s not learned: %s", end.run_id, exc)
                    self.runs.labels("invalid_path").inc()
                    await sched.apply_async(tenant, [RunEnd(run_id=end.run_id, failed=True)])

    async def expire_forever(self) -> None:
        """Close idle traces every ``EXPIRE_EVERY_S`` seconds."""
        while True:
            await asyncio.sleep(min(EXPIRE_EVERY_S, self.mapping.idle_timeout_s / 4))
            try:
                await self.expire()
            except Exception:
                log.exception("closing idle traces failed")

    async def expire(self) -> None:
        """Close the traces idle for ``idle_timeout_s`` and learn them."""
        out = self.assembler.expire()
        # runs of several tenants can time out together: the tenant is each path's own
        by_tenant: dict[str, AssemblyOutput] = {}
        for p in out.paths:
            by_tenant.setdefault(p.tenant, AssemblyOutput()).paths.append(p)
        for t, run_id in out.ended:
            by_tenant.setdefault(t, AssemblyOutput()).ended.append((t, run_id))
        for tenant, part in by_tenant.items():
            await self.apply(tenant, part)
        self.count()


OTLP: Final = web.AppKey("hermes_otlp", OtlpReceiver)


def _response(content_type: str, rejected: int) -> web.Response:
    """An OTLP ``ExportTraceServiceResponse`` in the request's encoding."""
    message = f"{rejected} spans rejected (malformed ids or times)" if rejected else ""
    if content_type == PROTOBUF:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTracePartialSuccess,
            ExportTraceServiceResponse,
        )

        resp = ExportTraceServiceResponse()
        if rejected:
            resp.partial_success.CopyFrom(
                ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
            )
        return web.Response(body=resp.SerializeToString(), content_type=PROTOBUF)
    body: dict[str, object] = {}
    if rejected:
        body["partialSuccess"] = {"rejectedSpans": str(rejected), "errorMessage": message}
    return web.json_response(body)


@routes.post("/v1/traces")
async def receive_traces(request: web.Request) -> web.Response:
    """OTLP/HTTP ``ExportTraceServiceRequest`` (protobuf or JSON) -> learned runs."""
    ctype = request.content_type
    if ctype not in CONTENT_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type must be one of {list(CONTENT_TYPES)}, got {ctype!r}",
        )
    receiver = request.app[OTLP]
    raw = await request.read()
    try:
        if len(raw) > OFF_LOOP_BYTES:
            decoded = await asyncio.to_thread(
                decode, raw, ctype, receiver.mapping, loads=loads_json
            )
        else:
            decoded = decode(raw, ctype, receiver.mapping, loads=loads_json)
    except OtlpUnavailable as exc:
        raise ApiError(415, "otlp_unavailable", str(exc)) from None
    except OtlpDecodeError as exc:
        raise ApiError(400, "invalid_otlp", str(exc)) from None
    tenant = cast(str, request[TENANT])
    out = receiver.assembler.add(tenant, decoded.spans)
    await receiver.apply(tenant, out)
    receiver.count(decoded)
    return _response(ctype, sum(decoded.ignored.values()))


async def _receiver_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[OTLP].expire_forever())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def setup_otlp(app: web.Application, mapping: SpanMapping | None = None) -> None:
    """Register ``POST /v1/traces`` with a receiver over ``app[SCHEDULER]``."""
    app[OTLP] = OtlpReceiver(app[SCHEDULER], mapping or mapping_from_env())
    app.add_routes(routes)
    app.cleanup_ctx.append(_receiver_ctx)
