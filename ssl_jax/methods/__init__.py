"""ssl_jax.methods."""
