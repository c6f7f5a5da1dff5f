"""latentgen: generative ConvNets with continuous latent factors, learned by alternating
back-propagation (Langevin inference of each example's latents, then a gradient step on the
generator)."""

__version__ = "0.1.0"

from .data import Examples  # noqa: E402
from .errors import UserError  # noqa: E402
from .generator import Generator  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .modality import Modality, option  # noqa: E402
from .nets import UpsamplingGenerator  # noqa: E402
from .priors import Prior, StandardNormal  # noqa: E402
from .samplers import GradientDescent, Langevin, Sampler  # noqa: E402

__all__ = ["Examples", "Generator", "GradientDescent", "Langevin", "Modality", "Prior",
           "Sampler", "StandardNormal", "UpsamplingGenerator", "UserError", "hookimpl", "option",
           "__version__"]
