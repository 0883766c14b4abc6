"""The DDPM: ``model`` (schedule, loss, training, DDPM/DDIM sampler with its balance),
``unet`` and ``unet_public`` (networks), ``images`` (data sets), ``quality`` (sample quality),
``curve`` (R over training), ``controls``, ``claims``, ``diffusers_adapter`` (the optional
extra) and ``system`` (the ``ddpm`` adapter)."""
