"""`driftline report`: the drift report of one window, rebuilt from Kafka, for humans.

`builder` is the pure part (pane partials + reference -> the window's `WindowResult`, judged
exactly as stage 2 judges it); `source` reads the reference and the partials from Kafka;
`cli` is the command. Nothing is imported here so that ``driftline --help`` stays fast.
"""

__all__ = ["builder", "cli", "source"]
