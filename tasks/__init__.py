"""The work of eoflows, grouped by concern.

`science` (NumPy only), `data` (sources, storage, STAC, products), `cwl` and `remote` (other systems), `windows`
(where a Dask step's windows run), `reporting` (what a person sees), and one module of steps per package
(`s2_indices`, `burned_area`, `downsample`), which wire the others together.
"""
