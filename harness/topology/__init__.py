"""The scaled-out topology run natively: the services of ``docker/compose.yaml`` on loopback, no Docker.

``processes`` starts and stops service processes (and proves none is left), ``stores`` brings up
PostgreSQL, Redis and the S3 endpoint, ``cluster`` adds MLflow, Airflow on Celery and BentoML, and
``airflow_api`` talks to Airflow's REST API. ``python -m harness.topology`` starts it for a person.
"""
