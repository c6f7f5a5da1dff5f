"""Inference defaults of the commands that work on a trained run (no torch import: command
help shows them). ``latentgen.evaluation.inference`` says why they are what they are."""

DEFAULT_STEPS = 300
DEFAULT_SAMPLER = "map"
#: MAP steps that take a training example's banked latent (a Langevin sample, noisy by design)
#: to its posterior mode; measured on 24x24 digits, 10 steps already match 300 steps from Z = 0
REFINE_STEPS = 30
#: prior samples (and as many reference, PCA and floor examples) the synthesis measures compare
DEFAULT_SYNTHESIS_N = 1000
#: importance samples per example of `evaluate --nll`
DEFAULT_NLL_SAMPLES = 128
