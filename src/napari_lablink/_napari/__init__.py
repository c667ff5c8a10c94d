"""napari glue. Importing it switches Arkitekt logins started by connections to napari's policy
(see :mod:`napari_lablink._napari.approval`) and turns a server's outage into one notification
(:mod:`napari_lablink._napari.outages`), and makes napari's dask cache safe for the plane
reads that opening and slicing run at the same time (:mod:`napari_lablink._napari.dask_cache`):
every reader, writer and widget module is below it."""

from napari_lablink._napari.approval import use_napari_approval
from napari_lablink._napari.dask_cache import make_dask_cache_thread_safe
from napari_lablink._napari.outages import watch_outages

use_napari_approval()
watch_outages()
make_dask_cache_thread_safe()
