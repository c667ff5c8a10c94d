"""The real Cytomine PIMS (not a stand-in), run from its own venv, and the images tests give it."""
