"""The importers' error: light, so the CLI and the column lookup raise it without importing h5py."""

from __future__ import annotations


class ImporterError(RuntimeError):
    """An import that cannot start or go on; the message names the file, the field and the reason."""
