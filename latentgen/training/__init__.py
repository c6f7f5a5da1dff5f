"""Training: the settings schema, the ABP engine, latent bank, trainer, observers, run directory."""
