"""Swagger UI and ReDoc served from this service's own files: the docs work offline and under CSP."""
