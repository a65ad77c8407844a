"""Capture handlers: what a chain streams, as it streams, into a trace.

>>> from chainkit.callbacks import StreamCapture, EventCapture, StreamPrinter, capture
>>> cap = StreamCapture()
>>> for chunk in chain.stream({"topic": "goldfish"}, config={"callbacks": [cap]}):
...     pass
>>> cap.runs[-1].ttft, cap.summary()

- :class:`StreamCapture`: every run and every model chunk with its time,
  usage, errors, derived timings.
- :class:`EventCapture`: the ``astream_events`` v2 event stream, for any call.
- :class:`StreamPrinter`: chunks printed as they arrive (labelled lines when
  several streams run at once).
- :class:`OTelCapture`: runs as OpenTelemetry spans (GenAI conventions) and
  GenAI client metrics, live (the ``otel`` extra).
- :func:`capture`: attach capture to every call in a ``with`` block
  (:func:`attach`: any handlers, without a trace).
- :func:`record_events`: tee an ``astream_events`` iterator into a trace.

All are LangChain callback handlers that run inline on both the sync and async
paths; they write :mod:`chainkit.trace` records.
"""

from __future__ import annotations

from chainkit.callbacks._context import CaptureBlock, attach, capture
from chainkit.callbacks._event_capture import EventCapture
from chainkit.callbacks._otel import OTelCapture
from chainkit.callbacks._printer import LabelInfo, StreamPrinter
from chainkit.callbacks._record import EventRecorder, record_events
from chainkit.callbacks._stream_capture import StreamCapture

__all__ = [
    "CaptureBlock",
    "EventCapture",
    "EventRecorder",
    "LabelInfo",
    "OTelCapture",
    "StreamCapture",
    "StreamPrinter",
    "attach",
    "capture",
    "record_events",
]
