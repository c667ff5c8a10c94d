"""The Cytomine PIMS protocol: image metadata from ``/info``, exact pixels from PNG windows.

``session`` makes the HTTP calls; ``tiers`` picks the pyramid tiers PIMS serves without
resampling; ``read`` builds the lazy image and checks every window; ``browse`` looks a path up;
``server`` composes them into :class:`~napari_lablink.client.pims.server.PimsServer`.
"""
