"""Other systems eoflows talks to: Calrissian on Kubernetes, Dask Gateway, STAC APIs."""
