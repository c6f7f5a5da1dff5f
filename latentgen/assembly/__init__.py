"""How a run is put together: its settings (config), the run directory, the assembled model,
and a trained model as the measures see it."""
