"""The video modality: loaders for every container, generator sizes, writers and every verb
from the CLI."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

import latentgen
from latentgen import UserError
from latentgen.plugins.registry import get_registry
from tests.conftest import train_from_cli

TINY_VIDEO = ["--modality", "video", "--frames", "8", "--image-size", "16", "--channels", "1",
              "--latent-dim", "4", "--batch-size", "8", "--langevin-steps", "3", "--width", "4",
              "--device", "cpu"]


def _video(**values):
    mod = get_registry().modality("video")
    return mod, mod.make_options(values)


def moving_square(frames: int, size: int, start: int, speed: int = 2,
                  color: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """uint8 (frames, size, size, 3): a bright square crossing a dark frame."""
    out = np.zeros((frames, size, size, 3), np.uint8)
    side = max(2, size // 4)
    for t in range(frames):
        x = (start + speed * t) % (size - side)
        out[t, size // 3:size // 3 + side, x:x + side] = color
    return out


def flicker(frames: int, size: int, seed: int) -> np.ndarray:
    """uint8 (frames, size, size, 3): horizontal bars blinking (another category)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((frames, size, size, 3), np.uint8)
    for t in range(frames):
        out[t, rng.integers(0, size, 3)] = 200
    return out


def write_container(path: Path, frames: np.ndarray, codec: str, fps: int = 10) -> None:
    """Write uint8 (T, H, W, 3) with PyAV in the container of ``path``'s suffix."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for arr in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def write_gif(path: Path, frames: np.ndarray) -> None:
    images = [Image.fromarray(f).convert("L") for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)


@pytest.fixture(scope="module")
def clip_sets(tmp_path_factory) -> dict[str, Path]:
    """Squares moving right: MP4 for training, GIF for testing; flicker as the negative set."""
    root = tmp_path_factory.mktemp("video")
    for name, count, seed in (("train", 24, 0), ("test", 6, 1)):
        (root / name).mkdir()
        rng = np.random.default_rng(seed)
        for i in range(count):
            clip = moving_square(8, 32, int(rng.integers(0, 24)), int(rng.integers(1, 4)))
            if name == "train":
                write_container(root / name / f"clip{i:02d}.mp4", clip, "libx264")
            else:
                write_gif(root / name / f"clip{i:02d}.gif", clip)
    (root / "negative").mkdir()
    for i in range(6):
        write_gif(root / "negative" / f"flicker{i}.gif", flicker(8, 32, i))
    return {k: root / k for k in ("train", "test", "negative")}


# -- loaders -------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix, codec", [(".mp4", "libx264"), (".avi", "mpeg4"),
                                           (".mov", "mjpeg"), (".webm", "libvpx"),
                                           (".mkv", "libx264"), (".m4v", "libx264")])
def test_each_container_is_read(tmp_path, suffix, codec):
    write_container(tmp_path / f"clip{suffix}", moving_square(20, 48, 0), codec)
    mod, opts = _video(frames=8, image_size=16, channels=3)
    data = mod.open_dataset(str(tmp_path / f"clip{suffix}"), opts)
    # 20 frames at hop 8: two clips, and the 4-frame tail (half a clip) completed
    assert len(data) == 3 and data.example_shape == (3, 8, 16, 16)
    clip = data.get(torch.tensor([0]))[0]
    bright = [(f.mean(0) > 0).float().nonzero()[:, 1].float().mean().item() for f in
              clip.unbind(1)]
    assert bright[-1] > bright[0]  # the square moved right


def test_gif_frame_folders_and_arrays(tmp_path):
    clip = moving_square(8, 32, 0)
    write_gif(tmp_path / "a.gif", clip)
    frames = tmp_path / "frames" / "walk"
    frames.mkdir(parents=True)
    for t, f in enumerate(clip):
        Image.fromarray(f).save(frames / f"{t:03d}.png")
    np.save(tmp_path / "clips.npy", np.stack([clip, clip])[..., 0])  # (N, T, H, W)
    mod, opts = _video(frames=8, image_size=16, channels=1)
    gif = mod.open_dataset(str(tmp_path / "a.gif"), opts).get(torch.tensor([0]))
    folder = mod.open_dataset(str(tmp_path / "frames"), opts)
    arr = mod.open_dataset(str(tmp_path / "clips.npy"), opts)
    assert len(folder) == 1 and len(arr) == 2
    assert gif.shape == (1, 1, 8, 16, 16)
    assert (folder.get(torch.tensor([0])) - gif).abs().max() < 0.05  # same frames, same resize
    # arrays are resized with torch (antialiased bilinear), files with Pillow (Lanczos)
    assert (arr.get(torch.tensor([0])) - gif).abs().mean() < 0.02
    # a whole folder: the GIF, the frame folder and nothing else
    both = mod.open_dataset(str(tmp_path), _video(frames=8, image_size=16, channels=1)[1])
    assert len(both) == 2 and both.names[0].endswith("a.gif#0")


def test_frames_in_natural_order_and_stills_beside_videos_are_not_frames(tmp_path):
    clip = moving_square(12, 16, 0, speed=1)  # x = 0..11, no wrap-around
    frames = tmp_path / "data" / "walk"
    frames.mkdir(parents=True)
    for t, f in enumerate(clip):  # unpadded numbers: 0.png 1.png ... 10.png 11.png
        Image.fromarray(f).save(frames / f"{t}.png")
    mod, opts = _video(frames=12, image_size=16, channels=1)
    got = mod.open_dataset(str(frames), opts).get(torch.tensor([0]))[0, 0]
    centre = [float((f > 0).float().nonzero()[:, 1].float().mean()) for f in got]
    assert centre == sorted(centre)  # 2.png before 10.png: the square keeps moving right
    # a folder of videos with their strip pictures beside them: the pictures are not a video
    write_gif(tmp_path / "data" / "a.gif", clip)
    Image.fromarray(clip[0]).save(tmp_path / "data" / "a.png")
    assert len(mod.open_dataset(str(tmp_path / "data"), opts)) == 2  # a.gif and walk/


def test_gif_frames_merged_by_the_encoder_are_repeated_back(tmp_path):
    mod, opts = _video(frames=8, image_size=16, channels=1)
    clip = moving_square(8, 16, 0)
    clip[4:] = clip[4]  # the last four frames alike: Pillow stores one frame, 4x as long
    write_gif(tmp_path / "held.gif", clip)
    with Image.open(tmp_path / "held.gif") as gif:
        assert gif.n_frames == 5
    data = mod.open_dataset(str(tmp_path / "held.gif"), opts)
    assert len(data) == 1 and data.example_shape == (1, 8, 16, 16)
    x = data.get(torch.tensor([0]))
    files = mod.save_examples(x, tmp_path / "out", "clip", opts, fmt="GIF")  # any case
    assert mod.read_examples(files, opts).shape == x.shape


def test_short_clips_hold_their_last_frame_and_stride_skips_frames(tmp_path):
    write_gif(tmp_path / "short.gif", moving_square(5, 16, 0))
    write_gif(tmp_path / "long.gif", moving_square(40, 16, 0))
    mod, opts = _video(frames=8, image_size=16, channels=1)
    short = mod.open_dataset(str(tmp_path / "short.gif"), opts).get(torch.tensor([0]))[0, 0]
    assert all(torch.equal(short[4], short[t]) for t in range(5, 8))
    # 40 frames: 5 clips at stride 1; 20 kept frames, 2 clips + a 4-frame tail at stride 2
    assert len(mod.open_dataset(str(tmp_path / "long.gif"), opts)) == 5
    _, strided = _video(frames=8, image_size=16, channels=1, frame_stride=2)
    assert len(mod.open_dataset(str(tmp_path / "long.gif"), strided)) == 3


def test_bad_sources_are_one_line_errors(tmp_path):
    mod, opts = _video(frames=8, image_size=16, channels=1)
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 definitely not a video")
    (tmp_path / "broken.gif").write_bytes(b"GIF89a garbage")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    np.save(tmp_path / "flat.npy", np.zeros((3, 16, 16), np.uint8))
    np.save(tmp_path / "two_channels.npy", np.zeros((2, 8, 16, 16, 2), np.uint8))
    cases = {"broken.mp4": "cannot decode video", "broken.gif": "cannot read GIF",
             "empty": "holds no video files", "notes.txt": "unsupported file type",
             "flat.npy": "is not videos", "two_channels.npy": r"shape \(2, 8, 16, 16, 2\)",
             "missing": "does not exist"}
    for name, message in cases.items():
        with pytest.raises(UserError, match=message) as info:
            mod.open_dataset(str(tmp_path / name), opts)
        assert "\n" not in str(info.value) and name in str(info.value)


# -- generator and writers -----------------------------------------------------------------
@pytest.mark.parametrize("frames, size, base", [(16, 32, (4, 4, 4)), (60, 64, (15, 4, 4)),
                                                 (15, 28, (15, 7, 7)), (8, 16, (4, 4, 4))])
def test_generator_makes_clips_of_the_asked_size(frames, size, base):
    mod, opts = _video(frames=frames, image_size=size, channels=1, width=4)
    gen = mod.build_generator(4, opts)
    assert gen.data_shape == (1, frames, size, size)
    assert gen(torch.randn(2, 4)).shape == (2, 1, frames, size, size)
    _, field_opts = _video(frames=frames, image_size=size, channels=1, width=4,
                           latent_field=True)
    assert mod.build_generator(4, field_opts).latent_shape == (4, *base)


def test_a_longer_latent_field_gives_a_longer_clip():
    mod, opts = _video(frames=16, image_size=32, latent_field=True, width=4)
    gen = mod.build_generator(4, opts)
    assert gen.latent_shape == (4, 4, 4, 4)
    assert gen(torch.randn(1, 4, 8, 4, 4)).shape == (1, 3, 32, 32, 32)  # twice the frames


def test_writers_make_playable_files_strips_and_grids(tmp_path):
    mod, opts = _video(frames=8, image_size=16, channels=3, fps=10)
    x = torch.from_numpy(np.stack([moving_square(8, 16, s) for s in (0, 4)])).permute(
        0, 4, 1, 2, 3).float().div(127.5).sub(1)
    for fmt in ("mp4", "gif"):
        files = mod.save_examples(x, tmp_path / fmt, "clip", opts, fmt=fmt)
        videos = [p for p in files if p.suffix == "." + fmt]
        strips = [p for p in files if p.suffix == ".png"]
        assert len(videos) == 2 and len(strips) == 2
        assert Image.open(strips[0]).size == (8 * 16, 16)  # every frame side by side
        grid = mod.save_grid(x.unsqueeze(0), tmp_path / fmt / "grid", opts, fmt=fmt)
        assert sorted(p.suffix for p in grid) == sorted([".png", "." + fmt])
    with av.open(str(tmp_path / "mp4" / "clip_00000.mp4")) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.average_rate == 10
        assert sum(1 for _ in c.decode(stream)) == 8
    with Image.open(tmp_path / "gif" / "clip_00001.gif") as gif:
        assert gif.n_frames == 8 and gif.info["duration"] == 100 and gif.info["loop"] == 0


# -- the CLI -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def video_run(clip_sets, tmp_path_factory) -> Path:
    return train_from_cli(clip_sets["train"], tmp_path_factory.mktemp("video-run") / "run",
                          *TINY_VIDEO)


def test_synthesize_streams_clips_in_either_format(video_run, cli, tmp_path):
    res = cli("synthesize", video_run, "--n", "11", "--batch-size", "4", "--format", "gif",
              "--out", tmp_path / "g")
    assert res.code == 0, res
    gifs = sorted((tmp_path / "g").glob("sample_*.gif"))
    assert len(gifs) == 11 and (tmp_path / "g" / "grid.gif").exists()
    for p in gifs:
        with Image.open(p) as gif:
            assert gif.n_frames == 8 and gif.size == (16, 16)
    res = cli("synthesize", video_run, "--n", "3", "--out", tmp_path / "m")
    assert res.code == 0, res
    assert len(list((tmp_path / "m").glob("sample_*.mp4"))) == 3
    res = cli("synthesize", video_run, "--n", "3", "--format", "avi", "--out", tmp_path / "x")
    assert res.code == 2 and "--format must be one of mp4, gif" in res.err
    assert not (tmp_path / "x").exists()


def test_reconstruct_interpolate_evaluate(video_run, clip_sets, cli, tmp_path):
    res = cli("reconstruct", video_run, "--data", clip_sets["test"], "--n", "4", "--infer-steps",
              "20", "--out", tmp_path / "r")
    assert res.code == 0, res
    assert len(list((tmp_path / "r").glob("reconstruction_*.mp4"))) == 4
    res = cli("interpolate", video_run, "--pairs", "1", "--steps", "4", "--format", "gif",
              "--out", tmp_path / "i")
    assert res.code == 0, res
    assert len(list((tmp_path / "i").glob("pair00_step_*.gif"))) == 7  # 5 steps + 2 originals
    res = cli("evaluate", video_run, "--test-data", clip_sets["test"], "--negative-data",
              clip_sets["negative"], "--infer-steps", "20", "--json")
    assert res.code == 0, res
    result = json.loads(res.out)
    for name in ("train", "test", "negative"):
        assert 0 <= result[name]["mse"] < 1 and name in result["pca"]
    assert result["test"]["n"] == 6 and result["negative"]["n"] == 6


def test_format_is_refused_where_a_modality_has_one(trained_run, cli, tmp_path):
    res = cli("synthesize", trained_run, "--n", "2", "--format", "gif", "--out", tmp_path / "s")
    assert res.code == 2 and "writes one format only" in res.err
    assert not (tmp_path / "s").exists()


def test_report_plays_the_videos(video_run, clip_sets, cli, tmp_path):
    from tests.test_report import render_in_browser

    out = tmp_path / "report.html"
    res = cli("report", video_run, "--test-data", clip_sets["test"], "--infer-steps", "10",
              "--out", out)
    assert res.code == 0, res
    page = out.read_text()
    assert len(re.findall(r'<video [^>]*src="data:video/mp4;base64,', page)) >= 5
    media = render_in_browser(out, tmp_path)
    if media is None:
        pytest.skip("no chromium on PATH (.ci/run installs Debian's chromium)")
    videos = [m for m in media if m["tag"] == "VIDEO"]
    assert len(videos) >= 5
    assert all(v["ready"] >= 2 and v["width"] > 0 for v in videos), videos
    assert all(m["width"] > 0 for m in media if m["tag"] == "IMG")


def test_bad_video_options_are_one_line_errors(cli, tmp_path):
    for flag, value, message in (("--image-size", "30", "--image-size must be b * 2^k"),
                                 ("--frames", "1", "--frames must be between"),
                                 ("--frame-stride", "0", "--frame-stride must be at least 1")):
        res = cli("train", "--modality", "video", flag, value, "--out", tmp_path / "x")
        assert res.code == 2 and message in res.err, res
        assert not (tmp_path / "x").exists()


# -- the dynamic generator ----------------------------------------------------------------------
def test_the_dynamic_generator_makes_clips_of_any_length():
    from latentgen_video.dynamic import HEAD, DynamicGenerator

    torch.manual_seed(0)
    gen = DynamicGenerator(4, frames=6, channels=3, base=4, n_up=2, width=8)
    assert gen.latent_shape == (4, 6 + HEAD) and gen.data_shape == (3, 6, 16, 16)
    z = torch.randn(2, 4, 6 + HEAD, requires_grad=True)
    x = gen(z)
    assert x.shape == (2, 3, 6, 16, 16) and torch.isfinite(x).all()
    x.sum().backward()
    assert z.grad is not None and bool((z.grad[:, :, HEAD:] != 0).any())  # through time
    longer = torch.cat([z.detach(), torch.randn(2, 4, 18)], dim=2)
    y = gen(longer)
    assert y.shape == (2, 3, 24, 16, 16)
    # the first frames depend on the first innovations only: a longer latent continues a clip
    torch.testing.assert_close(y[:, :, :6], x.detach())


def test_training_truncates_back_propagation_at_each_window_and_inference_does_not():
    from latentgen_video.dynamic import HEAD, DynamicGenerator

    torch.manual_seed(0)
    gen = DynamicGenerator(4, frames=8, channels=1, base=4, n_up=1, width=4, window=3)
    z = torch.randn(1, 4, 8 + HEAD)
    last_frame_grad = {}
    for mode in ("train", "eval"):
        getattr(gen, mode)()
        zz = z.clone().requires_grad_(True)
        x = gen(zz)
        x[:, :, -1].sum().backward()  # frame 8 lies in the third window (frames 7..8)
        last_frame_grad[mode] = zz.grad[0].abs().sum(0)
        with torch.no_grad():  # the same clip either way: truncation only cuts gradients
            torch.testing.assert_close(gen(z), x.detach())
    train, full = last_frame_grad["train"], last_frame_grad["eval"]
    innovations = train[HEAD:]
    assert bool((innovations[:6] == 0).all())  # earlier windows: cut at the seams
    assert bool((innovations[6:] != 0).all())  # its own window
    assert float(train[1]) == 0.0 and float(full[1]) > 0  # s_0 only through the whole clip
    assert bool((full[HEAD:] != 0).all())
    assert float(train[0]) > 0  # the content reaches every frame directly


def test_dynamic_video_trains_and_synthesizes_four_times_longer(tmp_path, cli):
    out = tmp_path / "run"
    res = cli("train", "--out", out, *TINY_VIDEO, "--dynamic", "--window", "4", "--epochs", "1",
              "--max-steps", "3")
    assert res.code == 0, res
    run = latentgen.load_run(out, "cpu")
    assert run.config.prior == "gaussian"
    # content, initial state and innovations: one law each, also for a longer clip
    assert run.prior.means.shape == (3, 4) and run.prior.scales.shape == (3, 4, 4)
    longer = run.prior.resized((4, 4 * 8 + 2))
    assert longer.sample(2).shape == (2, 4, 34) and longer.mode(1).shape == (1, 4, 34)
    assert run.model.options.window == 4 and run.generator.window == 4
    x = run.synthesize(2, scale=4)
    assert x.shape == (2, 1, 32, 16, 16) and torch.isfinite(x).all()
    res = cli("synthesize", out, "--n", "1", "--scale", "2", "--format", "gif", "--out",
              tmp_path / "long")
    assert res.code == 0, res
    res = cli("train", "--out", tmp_path / "bad", *TINY_VIDEO, "--dynamic", "--latent-field")
    assert res.code != 0 and "choose one" in res.err
    res = cli("train", "--out", tmp_path / "bad", *TINY_VIDEO, "--dynamic", "--window", "-1")
    assert res.code != 0 and "--window" in res.err and not (tmp_path / "bad").exists()


def test_the_lds_baseline_recovers_missing_frames_of_a_linear_system():
    from latentgen_video.lds import LDS

    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(16, 2, generator=g, dtype=torch.float64))[0].T
    angle = torch.tensor(0.3, dtype=torch.float64)
    rot = torch.stack([torch.stack([angle.cos(), -angle.sin()]),
                       torch.stack([angle.sin(), angle.cos()])])
    a = torch.randn(40, 2, generator=g, dtype=torch.float64)
    coef = []
    for _ in range(12):
        coef.append(a)
        a = a @ rot.T
    x = (torch.stack(coef, 1) @ basis).reshape(40, 12, 1, 4, 4).transpose(1, 2).float() * 0.3
    lds = LDS.fit(x[:30], k=2)
    observed = torch.ones(12, dtype=torch.bool)
    observed[4:8] = False
    got = lds.recover(x[30:], observed)
    assert torch.equal(got[:, :, observed], x[30:][:, :, observed])
    assert float((got - x[30:]).abs().max()) < 1e-3  # the dynamics are exactly linear
    samples = lds.sample(5, 48, torch.Generator().manual_seed(1))
    assert samples.shape == (5, 1, 48, 4, 4) and torch.isfinite(samples).all()
