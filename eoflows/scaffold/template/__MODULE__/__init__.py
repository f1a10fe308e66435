"""__TITLE__: an eoflows application package (its steps and declaration are in `__MODULE__.steps`)."""
