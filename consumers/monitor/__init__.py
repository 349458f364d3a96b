"""Stage 2, `driftline monitor`: pane partials -> sliding windows -> drift tests -> alerts.

`handler` is the per-partition work without Kafka; `exporter` turns window results into
metrics; `app` is the composition root and loop.
"""

__all__ = ["app", "exporter", "handler"]
