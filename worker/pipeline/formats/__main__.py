"""``python -m worker.pipeline.formats``: print the table of formats for docs/formats.md."""

from worker.pipeline.formats import table

print(table(), end="")
