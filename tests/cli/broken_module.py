"""A user's module that fails while it is imported (for the CLI's one-line errors)."""

raise RuntimeError("this module is broken at import")
