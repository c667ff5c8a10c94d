"""napari-lablink: open lab server images in napari lazily, upload layers back, watch live PSFs."""
