"""Serving the champion with BentoML (docs/explanation/architecture.md#serving): the service, its request types, the deploy step."""
