"""Stand-in servers for tests, benchmarks and the demo, one package per protocol.

``mikro/`` (both GraphQL generations), ``s3/`` (moto behind a gateway that checks credentials;
mikro keeps its data there) and ``tracker/`` (MIBItracker) are stand-ins; ``pims/`` runs the real
Cytomine PIMS instead. ``serve.py`` is ``napari-lablink serve``. Written from the protocol
documents alone: nothing here imports the plugin's client, so a mistake in the client cannot
hide behind the same mistake in its test server.
"""

from napari_lablink.testing.mikro.server import MikroStandIn
from napari_lablink.testing.s3.server import S3StandIn
from napari_lablink.testing.tracker.server import LoggedRequest, TrackerStandIn

__all__ = ["LoggedRequest", "MikroStandIn", "S3StandIn", "TrackerStandIn"]
