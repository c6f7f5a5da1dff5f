"""The mask specs ``--mask`` takes, in words (no torch import: command help shows it)."""

#: the operators ``--observe`` takes (``latentgen.model.operators``), in words
OBSERVE_HELP = ("random:F (a fixed random projection to F x the entries, 0 < F <= 1), blur:S "
                "(a Gaussian blur of S samples along every spatial axis) or downsample:K (the "
                "mean of every K-wide block)")

MASK_HELP = ("block:K (a random K-wide square per example), pixels:P (fraction P of positions "
             "missing), or a mask file/folder (1 = observed)")
