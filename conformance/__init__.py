"""Cross-framework conformance suite for classification losses (torch, paddle, TensorFlow/Keras)."""

__version__ = "0.1.0"
