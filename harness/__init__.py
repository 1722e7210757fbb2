"""The project's harness: benchmarks, the native scaled-out topology, the bad-input corpus and the serving
process helpers. Tests, `make bench` and `make integration` use it; it is not part of the shipped
``astrospect`` package, so editing it never changes what the bento packs."""
