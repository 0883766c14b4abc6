"""Measures applied identically to any field, whichever system made it (``patterns``:
wavelength, entropy, components, class, steady-state residual)."""
