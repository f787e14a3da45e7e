"""Model components for rnncast (Keras 3 layers)."""
