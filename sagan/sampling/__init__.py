"""Drawing from a trained generator: images and grids, latent walks, attention maps and figures."""
