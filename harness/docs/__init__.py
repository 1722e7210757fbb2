"""The docs site's generated parts: results tables, the CLI, settings and HTTP references, the README block."""
