"""The MIBItracker protocol: a REST backend with JWT sessions, channel PNGs and MIBItiffs behind
signed storage URLs.

``session`` holds the login and makes every call; ``models`` types the JSON objects;
``records`` looks runs and images up; ``channels`` decodes, encodes and lazily stacks channel
planes; ``read``, ``write`` and ``browse`` are the operations; ``server`` composes them into
:class:`~napari_lablink.client.tracker.server.TrackerServer`.
"""
