"""The data gate: landing zone -> raw store -> accepted or quarantined -> snapshot (docs/explanation/architecture.md, "Data flow")."""
