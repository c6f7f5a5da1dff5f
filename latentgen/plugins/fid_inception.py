"""The built-in ``fid_inception`` feature extractor: the TF-Inception network that the original
FID code used and that pytorch-fid, torch-fidelity and clean-fid port (pytorch-fid's
``FIDInceptionA/C/E`` blocks with ``pt_inception-2015-12-05-6726825d.pth``), so its FID is
comparable with published numbers (at equal N; papers use 50,000 samples).

The pictures are prepared as the papers' code prepares them: quantised to uint8 RGB as a saved
PNG would be (clean-fid's point: the rounding moves FID), a single channel repeated to three,
then pytorch-fid's own ``InceptionV3`` (``resize_input``: bilinear to 299 x 299,
``normalize_input``: [0, 1] to [-1, 1]) gives the 2048 pool3 features.

pytorch-fid is an optional extra (``pip install 'latentgen[fid]'``). Its weights are never
downloaded: they are read from ``--extractor-weights`` or from the torch hub cache, where
pytorch-fid itself keeps them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import ModuleType
from unittest import mock

import torch
from torch import Tensor

from latentgen.errors import UserError

#: pytorch-fid's file of the TF-Inception FID weights, in the torch hub cache
FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"


def cached_weights() -> Path:
    """Where pytorch-fid (and so latentgen) finds the weights without being told."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILE


class FIDInceptionFeatures:
    """The 2048 pool3 features of the TF-Inception FID network for pictures whose values span
    ``value_range`` (pixels: the modality's range, (-1, 1) for images)."""

    #: its FID is the published FID's
    fid_comparable = True

    def __init__(self, device: torch.device | str = "cpu", weights: str | Path | None = None
                 ) -> None:
        library = _pytorch_fid()
        path = _weights_path(weights)
        self.net = _network(library, path).eval().to(device)
        self.device = torch.device(device)
        self.value_range: tuple[float, float] = (-1.0, 1.0)
        # cached statistics belong to these very weights (a stand-in file gets its own)
        with open(path, "rb") as fh:
            self.cache_key = "fid_inception-" + hashlib.file_digest(fh, "sha256").hexdigest()[:12]

    def __call__(self, pictures: Tensor) -> Tensor:
        x = pictures.to(self.device).float()
        x = x[:, :3] if x.shape[1] >= 3 else x[:, :1]
        lo, hi = self.value_range
        # uint8 as a PNG stores it (round to nearest, as latentgen's writers and torchvision's
        # save_image do), then ToTensor's / 255
        x = ((x - lo) / max(hi - lo, 1e-8) * 255).round().clamp(0, 255) / 255
        x = x.expand(-1, 3, -1, -1)  # gray as PIL's convert("RGB"): the value in R, G and B
        with torch.no_grad():
            return self.net(x)[0].flatten(1)


def _pytorch_fid() -> ModuleType:
    try:
        from pytorch_fid import inception
    except ImportError:
        raise UserError("the fid_inception extractor needs pytorch-fid: pip install "
                        "'latentgen[fid]' (or use `extractor` inception, not comparable with "
                        "published FID)") from None
    return inception


def _weights_path(weights: str | Path | None) -> Path:
    """The weights file: ``weights``, else the torch hub cache; one line naming the file and
    where to put it when it is missing (no download: tests and offline runs stay offline)."""
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise UserError(f"`extractor_weights` {weights} does not exist; give the path of "
                            f"pytorch-fid's {FID_WEIGHTS_FILE}")
        return path
    path = cached_weights()
    if not path.is_file():
        raise UserError(f"the fid_inception extractor needs pytorch-fid's weights "
                        f"{FID_WEIGHTS_FILE}: put the file at {path} or give "
                        "`extractor_weights` PATH")
    return path


def _network(library: ModuleType, path: Path) -> torch.nn.Module:
    """pytorch-fid's ``InceptionV3`` (pool3 block, its resize and normalisation) with the
    weights read from ``path``: the library builds its network as always, and only its
    download is replaced by the file, so the layers are exactly pytorch-fid's."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"cannot read the FID Inception weights {path} ({type(exc).__name__}); "
                        f"give pytorch-fid's {FID_WEIGHTS_FILE}") from None
    if not hasattr(library, "load_state_dict_from_url"):
        raise UserError("this pytorch-fid builds its network in a way latentgen does not know; "
                        "install the version 'latentgen[fid]' names")
    try:
        with mock.patch.object(library, "load_state_dict_from_url",
                               lambda *args, **kwargs: state):
            return library.InceptionV3([library.InceptionV3.BLOCK_INDEX_BY_DIM[2048]],
                                       resize_input=True, normalize_input=True)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise UserError(f"{path} is not pytorch-fid's {FID_WEIGHTS_FILE} "
                        f"({type(exc).__name__}); give that file") from None


def fid_shaped_network() -> torch.nn.Module:
    """pytorch-fid's ``fid_inception_v3`` network, randomly initialised instead of loaded."""
    from pytorch_fid import inception as blocks
    from torchvision.models import inception_v3

    net = inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    net.Mixed_5b = blocks.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = blocks.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = blocks.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = blocks.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = blocks.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = blocks.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = blocks.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = blocks.FIDInceptionE_1(1280)
    net.Mixed_7c = blocks.FIDInceptionE_2(2048)
    return net


def standin_weights(path: str | Path, seed: int = 0) -> Path:
    """Write a file shaped as ``pt_inception-2015-12-05-6726825d.pth`` but of random numbers:
    for tests and pipeline checks on machines without the real file. FID in its features
    runs the whole pipeline and means nothing."""
    torch.manual_seed(seed)
    torch.save(fid_shaped_network().state_dict(), path)
    return Path(path)


def fid_inception_extractor(device: torch.device | str = "cpu",
                            weights: str | Path | None = None) -> FIDInceptionFeatures:
    """The built-in ``fid_inception`` extractor's factory."""
    return FIDInceptionFeatures(device, weights)
