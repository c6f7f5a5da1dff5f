"""The latentgen command line (Typer): parses options, calls the core, prints with rich."""
