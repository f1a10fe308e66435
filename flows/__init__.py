"""Prefect flows of the eoflows application packages (one module per package)."""
