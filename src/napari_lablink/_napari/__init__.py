"""napari glue. Importing it switches Arkitekt logins started by connections to napari's policy
(see :mod:`napari_lablink._napari.approval`) and turns a server's outage into one notification
(:mod:`napari_lablink._napari.outages`): every reader, writer and widget module is below it."""

from napari_lablink._napari.approval import use_napari_approval
from napari_lablink._napari.outages import watch_outages

use_napari_approval()
watch_outages()
