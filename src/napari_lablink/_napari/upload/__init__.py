"""Uploads from napari: to mikro servers and to MIBItracker runs and images."""
