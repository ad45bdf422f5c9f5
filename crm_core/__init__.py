"""The unified CRM model and the services that change it.

Connectors and webhooks import only :mod:`crm_core.contracts`; everything else
here (the ORM, sessions, the ingest service) is for ``hub`` to wire together.
"""
