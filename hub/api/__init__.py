"""The REST API (``/api/v1``), described by the OpenAPI document it serves."""
