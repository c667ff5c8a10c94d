"""Stand-in servers for tests, benchmarks and the demo: mikro (both generations), S3, MIBItracker.

Written from the protocol documents alone: nothing here imports the plugin's client, so a
mistake in the client cannot hide behind the same mistake in its test server.
"""

from napari_lablink.testing.mikro.server import MikroStandIn
from napari_lablink.testing.s3.server import S3StandIn
from napari_lablink.testing.tracker.server import LoggedRequest, TrackerStandIn

__all__ = ["LoggedRequest", "MikroStandIn", "S3StandIn", "TrackerStandIn"]
