"""Files a person opens: samples, reconstructions, interpolations, charts and the report."""
