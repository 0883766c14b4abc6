"""The convolutional LSTM on Gray-Scott fields: ``model`` (gates, rollouts, their balance,
training) and ``system`` (the ``convlstm`` adapter)."""
