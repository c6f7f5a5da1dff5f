"""Inference defaults of the commands that work on a trained run (no torch import: command
help shows them). ``latentgen.measures.inference`` says why they are what they are."""

DEFAULT_STEPS = 300
DEFAULT_SAMPLER = "map"
#: MAP inference from the prior's mode starts at this many times sigma (``AdaptiveMAP``): on
#: 768 digits after 30 epochs, 300 steps reached a mean energy of 1,406 with it against 2,082
#: straight at sigma (1,398 with 30)
COLD_ANNEAL = 10.0
#: MAP steps that take a training example's banked latent (a Langevin sample, noisy by design)
#: to its posterior mode; measured on 24x24 digits, 10 steps already match 300 steps from Z = 0
REFINE_STEPS = 30
#: posterior draws whose mean fills the missing entries of masked examples (``--mask``;
#: ``latentgen.measures.recovery``): on the middle third of held-out clips of bouncing balls
#: the MAP fit left an error of 0.0089, one draw 0.0078, the mean of 4 0.0046 (docs/video.md)
DEFAULT_POSTERIOR_SAMPLES = 8
#: prior samples (and as many reference, PCA and floor examples) the synthesis measures compare
DEFAULT_SYNTHESIS_N = 1000
#: importance samples per example of `evaluate --nll`
DEFAULT_NLL_SAMPLES = 128
#: training examples whose error evaluation measures (an evenly spread subset of larger sets):
#: inference costs as much per example as training. On the embedded faces (2,048) the mean
#: over 512 was 0.002279 where 1,024 gave 0.002289
TRAIN_SAMPLE = 512
#: examples per batch of inference and synthesis (what the layers' forms are tuned for)
INFERENCE_BATCH = 256
#: the anomaly score `score` writes in its ``score`` column (``latentgen.measures.anomaly``)
DEFAULT_SCORE = "joint"


class Defaults:
    """The defaults above by the name of the argument or option they are the default of
    (``latentgen.DEFAULTS.infer_steps``): what the command line's help shows."""

    infer_steps = DEFAULT_STEPS
    sampler = DEFAULT_SAMPLER
    posterior_samples = DEFAULT_POSTERIOR_SAMPLES
    refine_steps = REFINE_STEPS
    synthesis_n = DEFAULT_SYNTHESIS_N
    nll_samples = DEFAULT_NLL_SAMPLES
    train_examples = TRAIN_SAMPLE
    inference_batch = INFERENCE_BATCH
    score = DEFAULT_SCORE


DEFAULTS = Defaults()
