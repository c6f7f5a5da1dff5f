"""Options the verbs that work on a trained run share, declared once (no torch import:
`--help` shows them)."""

import typer

from latentgen import DEFAULTS

RunArg = typer.Argument(..., help="Run directory written by `latentgen train` (its --out).",
                        show_default=False)
DeviceOpt = typer.Option("auto", help="auto (CUDA when present), cpu or cuda.")
FormatOpt = typer.Option(None, "--format", help="File format, for modalities that write "
                         "several (video: mp4 or gif; default: the modality's first).",
                         show_default=False)
InferStepsOpt = typer.Option(DEFAULTS.infer_steps, "--infer-steps", help="Inference steps for data "
                             "without banked latents (from the prior's mode).")
SamplerOpt = typer.Option(DEFAULTS.sampler, help="Inference for data without banked latents: "
                          "map (gradient descent on the log posterior with a self-tuning step), "
                          "gd (the seed's fixed-step update) or langevin (a posterior sample).")
PosteriorSamplesOpt = typer.Option(
    DEFAULTS.posterior_samples, "--posterior-samples", metavar="K",
    help="With --mask: fill the missing entries with the mean of K posterior draws, each a fit "
    "to the observed entries with noise of sigma added to them and the prior centred on a "
    "prior draw (randomize-then-optimize; K + 1 fits in all); 0: f at the MAP latent alone.")
TestOpt = typer.Option(None, "--test-data", help="Held-out data of the training category.")
NegativeOpt = typer.Option(None, "--negative-data", help="Data of another category.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object.")

# -- evaluate: the synthesis measures and the likelihood
SynthesisOpt = typer.Option(False, "--synthesis", help="Also measure synthesis: the sliced "
                            "Wasserstein distance of N prior samples from the reference, beside "
                            "probabilistic PCA's samples and real data's floor "
                            "(docs/experiments.md).")
ReferenceOpt = typer.Option(None, "--reference", metavar="test|train|PATH",
                            help="Data the samples are compared with (default: test when "
                            "--test-data is given, else train).")
SynthesisNOpt = typer.Option(DEFAULTS.synthesis_n, "--n", help="Samples for --synthesis (and as "
                             "many reference, PCA and floor examples); compare results at "
                             "equal N.")
SynthesisSeedOpt = typer.Option(0, "--seed", help="Random seed of --synthesis and --nll "
                                "(samples, patches, proposals).")
NLLOpt = typer.Option(False, "--nll", help="Also estimate the marginal log-likelihood of "
                      "--test-data (and --negative-data) by importance sampling, beside "
                      "probabilistic PCA's exact one.")
NLLSamplesOpt = typer.Option(DEFAULTS.nll_samples, "--nll-samples",
                             help="K, importance samples per example for --nll.")
ReconstructionOpt = typer.Option(True, "--reconstruction/--no-reconstruction",
                                 help="Report the reconstruction errors (--no-reconstruction: "
                                 "only --synthesis and --nll).")
ScaleOpt = typer.Option(1, "--scale", help="Samples K times larger, from latent fields K times "
                       "larger (a fully convolutional generator: pictures trained with "
                       "--latent-field, e.g. a texture model).")
MeasureOpt = typer.Option(None, "--measure", metavar="NAME", help="Also run this registered "
                         "measure (repeat the flag): reconstruction, latents, synthesis, nll, "
                         "or one a plugin registers (latentgen.register_measure).")
MeasureOptionOpt = typer.Option(None, "--measure-option", metavar="NAME=VALUE",
                               help="An option of a --measure that takes its own (repeat the "
                               "flag): request.options[NAME] == 'VALUE' (text; the measure "
                               "reads it).")
ShardOpt = typer.Option(None, "--shard", metavar="K/N|auto|auto/N",
                        help="Write only slice K of N (0 <= K < N) of the N examples: the same "
                        "files one unsharded job writes for them; shard 0 writes the grid. "
                        "auto: from a Slurm job array (SLURM_ARRAY_TASK_ID of "
                        "SLURM_ARRAY_TASK_COUNT), a Kubernetes indexed job "
                        "(JOB_COMPLETION_INDEX; give auto/N, N the completions) or torchrun "
                        "(RANK of WORLD_SIZE); none set: the whole job.",
                        show_default=False)
