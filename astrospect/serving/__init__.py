"""Serving the champion with BentoML (docs/architecture.md#serving): the service, its request types, the deploy step."""
