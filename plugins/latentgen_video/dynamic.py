"""The dynamic generator (Xie, Gao, Zheng, Zhu and Wu, AAAI 2019): video as a state-space model.

A clip of T frames has one latent of d x (T + 2) numbers: a content vector c, an initial state
s_0 and an innovation xi_t per frame. The state moves by

    s_t = tanh(s_{t-1} + F([xi_t, s_{t-1}]))        (F: a two-layer MLP)

and each frame is rendered from [c, s_t] by a 2D image generator shared by all frames. Nothing
in the weights depends on T: a latent with more innovations makes a longer clip
(``synthesize --scale K``: K times as many frames), and ABP infers every xi_t, s_0 and c of a
clip together, through time.

Training back-propagates through time over truncation windows of ``window`` frames (the
published 30): the state at the end of a window seeds the next one, but gradients do not flow
back across the seam, so a long clip (a whole video, ``--frames`` its length) is learned as one
sequence with persistent innovations while no gradient path is longer than a window. Inference
on a fixed generator (reconstruction, evaluation) back-propagates through the whole clip: there
the frames after a gap should pull on the innovations inside it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from latentgen import Generator, UpsamplingGenerator
from latentgen.model import halving_widths

#: the latent's columns before the innovations: content, then the initial state
HEAD = 2


class DynamicGenerator(Generator):
    """latent (N, d, T + 2) -> clip (N, channels, T, size, size)."""

    def __init__(self, latent_dim: int, frames: int, channels: int, base: int, n_up: int,
                 width: int, headroom: float = 1.0, window: int = 0) -> None:
        super().__init__()
        d = latent_dim
        self.window = window  # 0: no truncation
        self.transition = nn.Sequential(nn.Linear(2 * d, 4 * d), nn.LeakyReLU(0.2),
                                        nn.Linear(4 * d, d))
        self.frame = UpsamplingGenerator(dims=2, latent_dim=2 * d, out_channels=channels,
                                         base=base, strides=[2] * n_up,
                                         widths=halving_widths(width, n_up), headroom=headroom)
        self.latent_shape = (d, frames + HEAD)
        size = self.frame.data_shape[1:]
        self.data_shape = (channels, frames, *size)

    def latent_roles(self, latent_shape: tuple[int, ...]) -> Tensor:
        """Content, initial state and innovations follow three laws (a learned prior fits
        each on its own: after training the content is far from N(0, I))."""
        roles = torch.full((latent_shape[1],), 2, dtype=torch.long)
        roles[0], roles[1] = 0, 1
        return roles

    def states(self, z: Tensor) -> Tensor:
        """s_1 .. s_T of each clip: (N, T, d)."""
        s = z[:, :, 1]
        truncate = self.training and self.window > 0
        out = []
        for t in range(HEAD, z.shape[2]):
            if truncate and t > HEAD and (t - HEAD) % self.window == 0:
                s = s.detach()  # a window's last state seeds the next; no gradient across
            s = torch.tanh(s + self.transition(torch.cat([z[:, :, t], s], dim=1)))
            out.append(s)
        return torch.stack(out, dim=1)

    def forward(self, z: Tensor) -> Tensor:
        n, d, length = z.shape
        frames = length - HEAD
        s = self.states(z)
        content = z[:, :, 0].unsqueeze(1).expand(n, frames, d)
        # every frame of every clip in one pass of the image generator
        x = self.frame(torch.cat([content, s], dim=2).reshape(n * frames, 2 * d))
        return x.reshape(n, frames, *x.shape[1:]).transpose(1, 2)
