"""Parts of the watched folder that are not the watcher's loop: safe file-system access through
directory handles (``fs``), the names it never takes (``ignore``), and how often it may scan
(``pacing``)."""
