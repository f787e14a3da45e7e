"""Pure logic on numpy, pandas and pyarrow: no Beam, no TensorFlow (a test checks it)."""
