"""The "PSF acquisition" dock widget: live bead stacks from the acquisition core, measured."""
