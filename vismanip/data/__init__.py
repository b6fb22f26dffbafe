"""Demonstration data: robomimic-layout HDF5, validation, and parallel collection."""
