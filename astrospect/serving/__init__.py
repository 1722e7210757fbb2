"""Serving the champion with BentoML (DESIGN.md §8): the service, its request types, the deploy step."""
