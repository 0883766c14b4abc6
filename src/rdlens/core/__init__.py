"""The shared core: what every part of rdlens uses, importing nothing of rdlens above it.

``balance`` (the measurement shared by all systems), ``options`` (settings as data), ``rundir``
(atomic files, checksums, run contexts), ``study`` (one study-folder lifecycle), ``layout``
(the reproduce folder's files), ``threads``, ``torchutil``, ``errors``, ``progress``.
"""
