"""The node name Airflow records for a task instance (``AIRFLOW__CORE__HOSTNAME_CALLABLE``).

In containers every worker has its own hostname. Natively both Celery workers share one machine, so each
is given ``ASTROSPECT_NODE_NAME`` (``worker-default``, ``worker-gpu``) and reports that instead, which is
what lets the task-to-worker table tell them apart.
"""

from __future__ import annotations

import os
import socket


def node_name() -> str:
    return os.environ.get("ASTROSPECT_NODE_NAME") or socket.getfqdn()
