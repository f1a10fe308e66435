"""Data access: reading sources, storage and STAC I/O, staging and publishing, writing products and their STAC items."""
