"""What a trained run does and how it is judged: inference, baselines, metrics, curves, report."""
