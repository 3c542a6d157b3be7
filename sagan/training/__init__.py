"""Training: the adversarial losses, the train step (tf.distribute), the loop, its checkpoints."""
