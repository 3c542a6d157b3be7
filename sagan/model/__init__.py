"""The networks: spectral norm, self-attention, conditional layers -> G and D -> conditioning."""
