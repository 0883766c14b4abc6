"""Gray-Scott reaction-diffusion: ``model`` (the PDE, its fused single and batched kernels,
Pearson's start), ``controls`` and ``system`` (the ``rd`` adapter)."""
