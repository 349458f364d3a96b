"""Stage 1, `driftline ingest`: predictions + outcomes -> labeled events, pane partials, dead letters.

`handler` is the per-partition work without Kafka; `columnar` the pane sketches fed from decoded
records; `app` the composition root and loop; `reference` where `driftline reference build`
reads its sample.
"""

__all__ = ["app", "columnar", "handler", "reference"]
