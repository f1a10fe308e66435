"""Local servers for the demo and the tests (S3, Dask Gateway, STAC API); they need the dev extra."""
