"""ssl_jax.train: the one trainer (`trainer.train_and_evaluate`), configs, the mesh, checkpoints, reporting."""
