"""Inbound HTTP adapters (landing pages, ad platforms, PBXs) and outbound webhook delivery.

Like connectors, these import only :mod:`crm_core.contracts`, never the ORM.
"""
