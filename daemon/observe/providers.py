"""The tracer and meter providers of one venom process, built from ``[telemetry]``.

Nothing here touches OpenTelemetry's globals: :class:`TelemetryProviders` holds the
providers and hands them to the arbiter, the plugin host and the ledger,
and tests pass their own (an in-memory span exporter, a metric reader).

- traces: OTLP/HTTP to ``telemetry.otlp_endpoint``, else the console with
  ``telemetry.console``, else none (ids are still made: see
  :mod:`venom.daemon.observe.tracing`); root spans sampled at ``sample_ratio``,
  children follow their parent's flag.
- metrics (the arbiter's process only): a Prometheus endpoint on
  ``prometheus_host:prometheus_port`` with a registry of its own, and/or
  OTLP/HTTP every ``export_interval`` seconds.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import threading
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from venom.daemon.config.settings import TelemetryConfig
from venom.daemon.config.version import VERSION
from venom.schemas import ConfigError

log = logging.getLogger("venom.telemetry")


def _otlp_url(endpoint: str, signal: str) -> str:
    """``http://collector:4318`` → ``http://collector:4318/v1/<signal>``."""
    suffix = f"/v1/{signal}"
    return endpoint if endpoint.endswith(suffix) else endpoint.rstrip("/") + suffix


class TelemetryProviders:
    """Providers of one process, and the Prometheus endpoint when enabled.

    Either one may be None: no tracing, no metrics. :meth:`shutdown` flushes
    and stops exporters (the daemon calls it last, on the way out).
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        #: ``http://host:port/metrics`` when the Prometheus endpoint is up.
        self.prometheus_url = ""
        self._http: Any = None
        self._http_thread: threading.Thread | None = None

    @classmethod
    def from_config(
        cls, config: TelemetryConfig, *, role: str, metrics: bool
    ) -> TelemetryProviders:
        """What ``[telemetry]`` asks for, for a process of ``role``.

        ``metrics`` is False in plugin processes: the SPEC 7 metrics are the
        arbiter's (plugins report theirs in ``$SRV.STATS``).
        """
        resource = Resource.create(
            {
                "service.name": config.service_name,
                "service.instance.id": secrets.token_hex(8),
                "service.version": VERSION,
                "venom.role": role,
                "process.pid": os.getpid(),
            }
        )
        telemetry = cls(cls._tracer_provider(config, resource))
        if metrics:
            telemetry._start_metrics(config, resource)
        return telemetry

    @staticmethod
    def _tracer_provider(config: TelemetryConfig, resource: Resource) -> TracerProvider | None:
        processor: SpanProcessor
        if config.otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=_otlp_url(config.otlp_endpoint, "traces"))
            processor = BatchSpanProcessor(exporter)
        elif config.console:
            processor = BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr))
        else:
            return None
        provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
            resource=resource,
            shutdown_on_exit=False,
        )
        provider.add_span_processor(processor)
        return provider

    def _start_metrics(self, config: TelemetryConfig, resource: Resource) -> None:
        readers: list[MetricReader] = []
        if config.prometheus:
            readers.append(self._start_prometheus(config.prometheus_host, config.prometheus_port))
        if config.otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            exporter = OTLPMetricExporter(endpoint=_otlp_url(config.otlp_endpoint, "metrics"))
            readers.append(
                PeriodicExportingMetricReader(
                    exporter, export_interval_millis=config.export_interval * 1000
                )
            )
        if readers:
            self.meter_provider = MeterProvider(
                metric_readers=readers, resource=resource, shutdown_on_exit=False
            )

    def _start_prometheus(self, host: str, port: int) -> MetricReader:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry(auto_describe=True)
        reader = PrometheusMetricReader(registry=registry)
        try:
            self._http, self._http_thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve Prometheus metrics on {host}:{port}: {exc}",
                key="telemetry.prometheus_port",
            ) from exc
        bound = self._http.server_port
        shown = f"[{host}]" if ":" in host else host
        self.prometheus_url = f"http://{shown}:{bound}/metrics"
        log.info("Prometheus metrics at %s", self.prometheus_url)
        return reader

    def shutdown(self) -> None:
        """Flush and stop the exporters and the metrics endpoint (idempotent)."""
        if self.tracer_provider is not None:
            try:
                self.tracer_provider.shutdown()
            except Exception:
                log.exception("tracer provider shutdown failed")
            self.tracer_provider = None
        if self.meter_provider is not None:
            try:
                self.meter_provider.shutdown(timeout_millis=5000)
            except Exception:
                log.exception("meter provider shutdown failed")
            self.meter_provider = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
            if self._http_thread is not None:
                self._http_thread.join(timeout=5)
