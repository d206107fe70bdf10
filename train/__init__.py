"""Desktop side of the project: BR35H data pipeline, model training and evaluation.

Heavy dependencies (TensorFlow, OpenCV, matplotlib) are imported inside the modules that need
them, so ``import train`` stays cheap.
"""
