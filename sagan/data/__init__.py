"""Data: sources, TFRecords and the tf.data input pipeline."""
