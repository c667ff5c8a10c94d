"""Microscope backends behind the ``Backend`` protocol (see ``base``)."""
