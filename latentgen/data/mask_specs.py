"""The mask specs ``--mask`` takes, in words (no torch import: command help shows it)."""

MASK_HELP = ("block:K (a random K-wide square per example), pixels:P (fraction P of positions "
             "missing), or a mask file/folder (1 = observed)")
