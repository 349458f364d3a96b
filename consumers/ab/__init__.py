"""The A/B analyzer service: experiments and labeled events in, significance results out.

Modules: `handler` (decisions, no Kafka), `app` (composition root and loop), `cli`.
Nothing is imported here so that `driftline --help` stays free of scipy and pandas.
"""

__all__: list[str] = []
