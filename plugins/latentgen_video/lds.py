"""The linear baseline of the dynamic generator: a linear dynamic system (LDS).

Frames are projected on the top k principal components of the training frames; the
coefficients follow a linear AR(1) model a_(t+1) = A a_t + b + e_t, e_t ~ N(0, Q), fitted by
least squares on every pair of consecutive training frames, with a_1 ~ N(m, P). The LDS then
synthesizes clips of any length and recovers missing frames: the missing coefficients are
their posterior mean given the observed frames' (a Kalman filter and Rauch-Tung-Striebel
smoother, the observed coefficients taken as exact), mapped back to frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

#: the observed coefficients' noise variance in the smoother: "exact", kept invertible
EXACT = 1e-6


@dataclass
class LDS:
    mean: Tensor        # (D,) mean frame
    components: Tensor  # (k, D)
    a: Tensor           # (k, k) transition
    b: Tensor           # (k,)
    q: Tensor           # (k, k) innovation covariance
    m0: Tensor          # (k,) first coefficients' mean
    p0: Tensor          # (k, k) and covariance
    frame_shape: tuple[int, ...]  # (C, H, W)

    @classmethod
    def fit(cls, clips: Tensor, k: int) -> LDS:
        """An LDS of ``clips`` (N, C, T, H, W), ``k`` components."""
        n, c, t, h, w = clips.shape
        frames = clips.transpose(1, 2).reshape(n * t, -1).double()
        mean = frames.mean(0)
        x = frames - mean
        k = min(k, min(x.shape) - 1)
        _, _, vh = torch.linalg.svd(x, full_matrices=False)
        comp = vh[:k]
        coef = (x @ comp.T).reshape(n, t, k)
        prev, nxt = coef[:, :-1].reshape(-1, k), coef[:, 1:].reshape(-1, k)
        design = torch.cat([prev, torch.ones(len(prev), 1, dtype=prev.dtype)], dim=1)
        sol = torch.linalg.lstsq(design, nxt).solution  # (k + 1, k)
        a, b = sol[:k].T, sol[k]
        resid = nxt - design @ sol
        q = resid.T @ resid / max(1, len(resid) - k - 1)
        first = coef[:, 0]
        eye = 1e-6 * torch.eye(k, dtype=first.dtype)
        p0 = torch.cov(first.T) + eye if n > 1 else eye
        return cls(mean, comp, a, b, q + eye, first.mean(0), p0, (c, h, w))

    def _frames(self, coef: Tensor) -> Tensor:
        """(N, T, k) coefficients -> (N, C, T, H, W) clips."""
        n, t, _ = coef.shape
        x = coef @ self.components + self.mean
        return x.reshape(n, t, *self.frame_shape).transpose(1, 2).float()

    def sample(self, n: int, frames: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` clips of ``frames`` frames."""
        k = len(self.b)
        lq = torch.linalg.cholesky(self.q)
        lp = torch.linalg.cholesky(self.p0)
        noise = torch.randn(n, frames, k, generator=generator, dtype=torch.float64)
        a = self.m0 + noise[:, 0] @ lp.T
        out = [a]
        for t in range(1, frames):
            a = a @ self.a.T + self.b + noise[:, t] @ lq.T
            out.append(a)
        return self._frames(torch.stack(out, 1))

    def recover(self, clips: Tensor, observed: Tensor) -> Tensor:
        """``clips`` (N, C, T, H, W) with the frames where ``observed`` (T,) bool is False
        replaced by the LDS's estimate from the observed ones."""
        n, _, t, _, _ = clips.shape
        k = len(self.b)
        frames = clips.transpose(1, 2).reshape(n, t, -1).double()
        coef = (frames - self.mean) @ self.components.T  # (N, T, k)
        eye = torch.eye(k, dtype=coef.dtype)
        means, covs, pred_m, pred_c = [], [], [], []
        m, p = self.m0.expand(n, k), self.p0
        for step in range(t):  # Kalman filter
            if step > 0:
                m = m @ self.a.T + self.b
                p = self.a @ p @ self.a.T + self.q
            pred_m.append(m)
            pred_c.append(p)
            if observed[step]:
                gain = p @ torch.linalg.inv(p + EXACT * eye)
                m = m + (coef[:, step] - m) @ gain.T
                p = (eye - gain) @ p
            means.append(m)
            covs.append(p)
        smooth = [means[-1]]
        for step in range(t - 2, -1, -1):  # Rauch-Tung-Striebel
            j = covs[step] @ self.a.T @ torch.linalg.inv(pred_c[step + 1])
            smooth.insert(0, means[step] + (smooth[0] - pred_m[step + 1]) @ j.T)
        estimate = self._frames(torch.stack(smooth, 1))
        keep = observed.view(1, 1, t, 1, 1).to(clips.device)
        return torch.where(keep, clips, estimate.to(clips.dtype))
