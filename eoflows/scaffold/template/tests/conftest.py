"""eoflows' test harness: fixtures (a temporary Prefect API, a local S3 server, sample items) and the contract."""

pytest_plugins = ["eoflows.testing"]
