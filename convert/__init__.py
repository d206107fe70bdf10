"""Keras model -> deployable artifacts (TFLite fp32/fp16/dynamic/int8, ONNX fp32/int8: the table in
``convert.formats``; and the Android bundle), each evaluated in its own runtime and gated against
the Keras original: an artifact that classifies worse than the model it came from does not ship.

May import tensorflow, train and edge_runtime; nothing in edge_runtime may import this.
"""
