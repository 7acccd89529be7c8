"""``python -m worker.cli``: how ``seedworker run`` starts its children."""

from worker.cli import main

main()
