"""The science of the packages on NumPy arrays: no I/O, no Prefect (tests need NumPy alone)."""
