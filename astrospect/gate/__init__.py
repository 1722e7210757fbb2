"""The data gate: landing zone -> raw store -> accepted or quarantined -> snapshot (docs/architecture.md, "Data flow")."""
