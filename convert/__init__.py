"""Keras model -> deployable artifacts (TFLite fp32/fp16/dynamic/int8, ONNX, Android bundle),
each evaluated in its own runtime and gated against the Keras original (issue #4).

May import tensorflow, train and edge_runtime; nothing in edge_runtime may import this.
"""
