"""The LSTM: ``model`` (network, exact gate probe, generation), ``sequences`` (sine, Lorenz,
Van der Pol data), ``controls``, ``claims`` and ``system`` (the ``lstm`` adapter)."""
