"""napari glue. Importing it switches Arkitekt logins started by connections to napari's policy
(see :mod:`napari_lablink._napari.approval`): every reader, writer and widget module is below it."""

from napari_lablink._napari.approval import use_napari_approval

use_napari_approval()
