"""`python -m latentgen ...` runs the command-line interface (also under torchrun)."""

from latentgen_cli.app import main

if __name__ == "__main__":
    main()
