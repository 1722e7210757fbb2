"""Data: the shard format, the objid split and the tf.data input pipeline."""
