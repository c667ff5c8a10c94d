"""Stand-in servers for tests, benchmarks and the demo (mikro both generations, S3).

Written from protocols/mikro.md alone: nothing here imports the plugin's client, so a mistake
in the client cannot hide behind the same mistake in its test server.
"""

from napari_lablink.testing.mikro_server import MikroStandIn
from napari_lablink.testing.s3 import S3StandIn

__all__ = ["MikroStandIn", "S3StandIn"]
