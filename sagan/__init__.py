"""sagan: a Self-Attention GAN for 64x64 faces (Zhang et al. 2019) in TensorFlow/Keras 3."""
