"""Reading and writing files: inputs, TFRecords, spills, commits, the dataset reader, and
the state and model stores."""
