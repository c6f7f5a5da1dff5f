"""The built-in ``inception`` feature extractor for FID and KID: torchvision's Inception-v3
with its ImageNet weights. NOT comparable with published FID: the original FID network (the
``fid_inception`` extractor, ``latentgen.plugins.fid_inception``) has other weights and
patched layers, and papers' numbers come from that one.

No weights are downloaded by tests or by default runs: they are read from a path
(``--extractor-weights``), else from the torch cache, and only then does torchvision try to
download them; when none of that works, one line says what is missing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from latentgen.errors import UserError

#: torchvision's file name of the Inception-v3 ImageNet weights, in the torch hub cache
INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"


class InceptionFeatures:
    """The 2048 pool features of Inception-v3 for feature pictures of any kind: the first three
    channels (a single one repeated), mapped to [0, 1] by ``value_range`` (one range for
    every compared set: the modality's for pixels, else the reference's), resized to
    299 x 299 and normalised as for ImageNet. Its FID is not comparable with published FID
    (``fid_inception`` is)."""

    #: torchvision's network, not the original FID one: not comparable with papers' FID
    fid_comparable = False

    def __init__(self, device: torch.device | str = "cpu", weights: str | Path | None = None
                 ) -> None:
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=True, init_weights=False)
        net.load_state_dict(_inception_state(weights))
        # cached statistics belong to these weights: torchvision's named file, else the given
        self.cache_key = ("inception-0cc3c7bd" if not weights else
                          f"inception-{_file_digest(Path(weights))}")
        net.fc = torch.nn.Identity()
        self.net = net.eval().to(device)
        self.device = torch.device(device)
        self.value_range: tuple[float, float] = (-1.0, 1.0)
        self.mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
        self.std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)

    def __call__(self, pictures: Tensor) -> Tensor:
        x = pictures.to(self.device).float()
        x = x[:, :3] if x.shape[1] >= 3 else x[:, :1].expand(-1, 3, -1, -1)
        lo, hi = self.value_range
        x = ((x - lo) / max(hi - lo, 1e-8)).clamp(0, 1)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.net((x - self.mean) / self.std)


def _file_digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:12]


def _inception_state(weights: str | Path | None) -> dict[str, Tensor]:
    """Inception-v3's ImageNet weights: from ``weights``, the torch cache, or torchvision's
    download, in that order; one line saying what is missing when none works."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    path = Path(weights) if weights else cached
    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise UserError(f"cannot read Inception-v3 weights {path} ({type(exc).__name__}); "
                            "give torchvision's inception_v3_google file") from None
    if weights:
        raise UserError(f"`extractor_weights` {weights} does not exist; give the path of "
                        f"torchvision's {INCEPTION_FILE}")
    try:
        from torchvision.models import Inception_V3_Weights

        return Inception_V3_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    except Exception as exc:
        raise UserError(f"the inception extractor needs torchvision's Inception-v3 weights: "
                        f"not in the torch cache ({cached}) and not downloadable here "
                        f"({type(exc).__name__}); download them on a machine with internet "
                        "or give `extractor_weights` PATH") from None


def inception_extractor(device: torch.device | str = "cpu",
                        weights: str | Path | None = None) -> InceptionFeatures:
    """The built-in ``inception`` extractor's factory (not comparable with published FID)."""
    return InceptionFeatures(device, weights)
