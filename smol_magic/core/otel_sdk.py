"""The OpenTelemetry SDK behind ``telemetry``: whether tracing is on, the tracer provider and exporter, the flush.

Nothing here imports ``opentelemetry`` at module level: the SDK is loaded on the first traced run. State is per process, as OpenTelemetry's own global provider.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
INSTALL = 'pip install "smol-magic[otel]"'
DEFAULT_ENDPOINT = "http://localhost:4318"  # an OTLP/HTTP collector on this machine (Jaeger, Phoenix: 6006)
EXPORT_SECONDS = 5.0  # one export attempt, unless OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT says otherwise
FLUSH_SECONDS = 3.0  # the longest a run's end waits for its spans to leave
SLOW_FLUSH_SECONDS = 0.2  # ... once the collector has been found down or slow
HEALTHY_FLUSH_SECONDS = 1.0  # a flush that takes longer found the collector down or slow


@dataclass
class _Settings:
    on: bool | None = None  # None: on when an endpoint variable is set
    endpoint: str | None = None
    tracer_provider: Any = None


_settings = _Settings()
_lock = threading.Lock()
_setup: tuple[Any, Any, Any, bool] | None = None  # (settings key, tracer, provider, made by us) once set up
_warned: set[str] = set()
_flushing: threading.Thread | None = None  # the last flush, which may still wait on a dead collector
_slow = False  # the last flush took longer than HEALTHY_FLUSH_SECONDS


def instrument(endpoint: str | None = None, tracer_provider: Any = None) -> bool:
    """Trace every run from now on; False (and a warning) when the SDK is not installed.

    ``endpoint``: an OTLP/HTTP collector, e.g. ``http://localhost:6006`` (Phoenix) or
    ``http://localhost:4318`` (Jaeger, the OpenTelemetry Collector); default: the
    ``OTEL_EXPORTER_OTLP_*ENDPOINT`` variables, else localhost:4318. ``tracer_provider``:
    one of your own (its exporters are used); by default a provider you set globally with
    ``trace.set_tracer_provider`` is used as it is, and otherwise smol-magic makes its own.
    """
    with _lock:
        if (_settings.on, _settings.endpoint, _settings.tracer_provider) != (True, endpoint, tracer_provider):
            _settings.on, _settings.endpoint, _settings.tracer_provider = True, endpoint, tracer_provider
            _drop_setup()
    return tracer() is not None


def uninstrument() -> None:
    """Stop tracing runs (also when an endpoint variable is set)."""
    with _lock:
        _drop_setup()
        _settings.on, _settings.endpoint, _settings.tracer_provider = False, None, None


def reset() -> None:
    """Back to the default: traced when an endpoint variable is set."""
    uninstrument()
    _settings.on = None


def enabled() -> bool:
    """Whether runs are traced: ``instrument()``, or an endpoint variable (unless ``OTEL_SDK_DISABLED``)."""
    if _settings.on is not None:
        return _settings.on
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(os.environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def _drop_setup() -> None:
    """Forget the tracer; a provider we made is flushed and shut down (in the background: it may wait
    on a dead collector), one the user gave is left to them."""
    global _setup, _flushing, _slow
    _flushing, _slow = None, False
    if _setup is not None and _setup[3]:
        provider = _setup[2]
        threading.Thread(target=provider.shutdown, name="smol-magic-otel-shutdown", daemon=True).start()
    _setup = None


def tracer() -> Any:
    """The tracer, set up on first use; None (after one warning) when the SDK is missing."""
    global _setup
    key = (_settings.endpoint, id(_settings.tracer_provider), _endpoint_from_env())
    with _lock:
        if _setup is not None and _setup[0] == key:
            return _setup[1]
        _drop_setup()
        try:
            from opentelemetry import trace
        except ImportError:
            warn_once("missing", "OpenTelemetry traces are on (AgentMagics.otel or OTEL_EXPORTER_OTLP_ENDPOINT) "
                       f"but the SDK is not installed: {INSTALL}. The run goes on without traces.")
            return None
        provider, ours = _provider(trace)
        if provider is None:
            return None
        tracer = provider.get_tracer("smol_magic", _version())
        _setup = (key, tracer, provider, ours)
        return tracer


def _provider(trace: Any) -> tuple[Any, bool]:
    """The user's tracer provider if they gave or set one, else ours exporting by OTLP/HTTP."""
    if _settings.tracer_provider is not None:
        return _settings.tracer_provider, False
    current = trace.get_tracer_provider()
    if not isinstance(current, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return current, False  # set up by the user: their exporters, their resource
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        warn_once("missing", "OpenTelemetry traces are on but the SDK or the OTLP exporter is not installed: "
                   f"{INSTALL}. The run goes on without traces.")
        return None, False
    timeout = None
    if not any(os.environ.get(v) for v in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")):
        timeout = EXPORT_SECONDS
    endpoint = _traces_url(_settings.endpoint) if _settings.endpoint else None
    if endpoint is None and not any(os.environ.get(name, "").strip() for name in ENDPOINT_VARIABLES):
        endpoint = _traces_url(DEFAULT_ENDPOINT)
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or "smol-magic"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=timeout)))
    return provider, True


def _endpoint_from_env() -> str:
    return "|".join(os.environ.get(name, "") for name in ENDPOINT_VARIABLES)


def _traces_url(endpoint: str) -> str:
    """A collector's base URL (as ``OTEL_EXPORTER_OTLP_ENDPOINT``) made the traces URL; a full one stays."""
    endpoint = endpoint.strip()
    if "://" not in endpoint:
        endpoint = "http://" + endpoint
    return endpoint if endpoint.rstrip("/").endswith("/v1/traces") else endpoint.rstrip("/") + "/v1/traces"


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("smol-magic")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _flush(provider: Any) -> None:
    """Send the spans now, so they are in the collector when the cell ends; bounded, never raising.

    The SDK's ``force_flush`` waits for the export, whatever its timeout says: it runs on a thread
    of its own, waited for at most ``FLUSH_SECONDS``. Once a flush has not finished in a second (the
    collector is down or slow; a failed export is retried for seconds), later runs wait only
    ``SLOW_FLUSH_SECONDS``, until one gets through quickly again.
    """
    global _flushing, _slow
    if getattr(provider, "force_flush", None) is None:
        return
    if _flushing is not None and _flushing.is_alive():
        _flushing.join(SLOW_FLUSH_SECONDS)  # still sending earlier spans: the batch processor sends these too
        return
    _flushing = threading.Thread(target=_force_flush, args=(provider,), name="smol-magic-otel-flush", daemon=True)
    started = time.monotonic()
    _flushing.start()
    _flushing.join(SLOW_FLUSH_SECONDS if _slow else FLUSH_SECONDS)
    # Not done, or done only after the exporter's retries: the collector is down or far away.
    _slow = _flushing.is_alive() or time.monotonic() - started > HEALTHY_FLUSH_SECONDS


def _force_flush(provider: Any) -> None:
    try:
        provider.force_flush(int(FLUSH_SECONDS * 1000))
    except Exception:  # noqa: BLE001 - a trace must never break a run
        pass


def warn_once(key: str, message: str) -> None:
    """One line on stderr, once per process (as the magic's own warnings): the run goes on."""
    if key not in _warned:
        _warned.add(key)
        print(f"smol-magic: {message}", file=sys.stderr)


def flush() -> None:
    """Send the finished spans now (bounded, see ``_flush``), when a tracer is set up."""
    if _setup is not None:
        _flush(_setup[2])
