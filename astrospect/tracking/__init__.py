"""MLflow tracking, one job per module (docs/explanation/architecture.md, "Tracking").

- :mod:`~astrospect.tracking.tags`: the tag vocabulary, and typed views decoded from runs' tags;
- :mod:`~astrospect.tracking.server`: the client, and the probe that fails fast when no server answers;
- :mod:`~astrospect.tracking.sessions`: a training session's parent run, its children, the UI's URLs;
- :mod:`~astrospect.tracking.runs`: logging one challenger's child run, once per session;
- :mod:`~astrospect.tracking.live`: that run while it trains (per-epoch curves, system metrics, failures);
- :mod:`~astrospect.tracking.registry`: registered versions, every alias move and every version lookup.

A session (one nightly DAG run, or one ``make run``) is a parent run; its children are the challengers it
trained (tag ``challenger``), so the UI's compare view puts them side by side. The DAG trains challengers
in separate processes, so every function takes the parent's run id and talks to the server through ids.
MLflow is imported inside the functions: importing this package costs nothing.
"""
