"""The audio modality: loaders, generator sizes, writers and every verb from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from latentgen import UserError
from latentgen.plugins.registry import get_registry
from latentgen_audio.spectrogram import db_distance, db_to_model, log_mel, to_waves
from tests.conftest import train_from_cli

RATE = 4000  # tiny clips keep the suite fast: 0.25 s = 1000 samples
TINY_AUDIO = ["--modality", "audio", "--sample-rate", str(RATE), "--clip-seconds", "0.25",
              "--latent-dim", "4", "--batch-size", "16", "--langevin-steps", "5", "--width", "8",
              "--device", "cpu"]


def _audio(**values):
    mod = get_registry().modality("audio")
    return mod, mod.make_options(values)


def _tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t) * np.exp(-3 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def sound_sets(tmp_path_factory) -> dict[str, Path]:
    """Tones (train / test) and noise bursts (negative), written as WAV at other rates."""
    root = tmp_path_factory.mktemp("sound")
    rng = np.random.default_rng(0)
    for name, count in (("train", 48), ("test", 12)):
        (root / name).mkdir()
        for i in range(count):
            wave = _tone(rng.uniform(200, 600), 0.25, 8000)
            sf.write(root / name / f"tone{i:03d}.wav", wave, 8000)
    (root / "negative").mkdir()
    for i in range(12):
        noise = (rng.standard_normal(2000) * np.exp(-np.arange(2000) / 300)).astype(np.float32)
        sf.write(root / "negative" / f"noise{i:03d}.wav", 0.3 * noise, 8000)
    return {k: root / k for k in ("train", "test", "negative")}


# -- loaders -------------------------------------------------------------------------------
def test_clips_pad_short_files_and_split_long_ones():
    from latentgen_audio.datasets import clips_of

    assert [len(c) for c in clips_of(np.ones(30, np.float32), 100)] == [100]
    long = clips_of(np.ones(370, np.float32), 100)  # 3 clips + a 70-sample tail (>= half)
    assert len(long) == 4 and long[3][69] == 1 and long[3][70] == 0
    assert len(clips_of(np.ones(340, np.float32), 100)) == 3  # 40-sample tail dropped


def test_files_are_resampled_mixed_down_and_cut(tmp_path):
    stereo = np.stack([_tone(440, 1.0, 8000), _tone(440, 1.0, 8000)], axis=1)
    sf.write(tmp_path / "a.wav", stereo, 8000)
    sf.write(tmp_path / "b.flac", _tone(300, 0.5, 22050), 22050)
    sf.write(tmp_path / "c.ogg", _tone(500, 0.3, 16000), 16000)
    mod, opts = _audio(sample_rate=RATE, clip_seconds=0.25, representation="waveform")
    data = mod.open_dataset(str(tmp_path), opts)
    # a: 1 s -> 4 clips; b: 0.5 s -> 2 clips; c: 0.3 s -> 1 clip + a 0.05 s tail (dropped)
    assert len(data) == 7 and data.example_shape == (1, 1000)
    x = data.get(torch.arange(7))
    assert x.abs().max() <= 1 and x[0].abs().max() > 0.85  # peak-normalised to 0.9
    # 440 Hz survives resampling from 8 kHz to 4 kHz: the spectrum peaks there
    spectrum = torch.fft.rfft(x[1, 0]).abs()
    assert abs(int(spectrum.argmax()) * RATE / 1000 - 440) < 10
    # as log-mel pictures: the same clips' spectrograms, mapped from dB onto [-1, 1]
    mod, opts = _audio(sample_rate=RATE, clip_seconds=0.25, representation="logmel")
    pictures = mod.open_dataset(str(tmp_path), opts).get(torch.arange(7))
    assert pictures.shape == (7, 1, 32, 26)  # 4 kHz: 32 bands; 250 ms: 26 frames of 10 ms
    assert torch.allclose(pictures, db_to_model(log_mel(x, RATE)).unsqueeze(1), atol=2e-3)


def test_corrupt_and_unsupported_sources_are_clear_errors(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF....not a wave")
    mod, opts = _audio(sample_rate=RATE, clip_seconds=0.25)
    with pytest.raises(UserError, match="cannot read sound file .*bad.wav"):
        mod.open_dataset(str(tmp_path), opts)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no WAV, FLAC or OGG"):
        mod.open_dataset(str(tmp_path / "empty"), opts)
    np.save(tmp_path / "loud.npy", np.full((2, 1000), 3.0, np.float32))
    with pytest.raises(UserError, match=r"\[-1, 1\]"):
        mod.open_dataset(str(tmp_path / "loud.npy"), opts)


def test_the_embedded_held_out_sounds_are_other_clips_of_the_same_families():
    mod, opts = _audio(sample_rate=RATE, clip_seconds=0.25)
    train = mod.open_dataset(None, opts)
    test = mod.open_dataset("builtin:sounds-test", opts)
    assert len(test) == 128 and test.example_shape == train.example_shape
    a = train.get(torch.arange(len(train)), "cpu").flatten(1)
    b = test.get(torch.arange(len(test)), "cpu").flatten(1)
    # no held-out clip is a training clip
    assert torch.cdist(b, a).min() > 0.1
    again = mod.open_dataset("builtin:sounds-test", opts)  # the same clips every time
    assert torch.equal(b, again.get(torch.arange(len(again)), "cpu").flatten(1))


def test_arrays_of_clips(tmp_path):
    np.save(tmp_path / "c.npy", np.stack([_tone(300, 0.5, RATE), _tone(400, 0.5, RATE)]))
    mod, opts = _audio(sample_rate=RATE, clip_seconds=0.25, representation="waveform")
    data = mod.open_dataset(str(tmp_path / "c.npy"), opts)
    assert len(data) == 4 and data.example_shape == (1, 1000)  # each 0.5 s row: two clips


# -- generator and writers -----------------------------------------------------------------
def _shape(rep: str, rate: int, seconds: float) -> tuple[int, ...]:
    samples = int(round(rate * seconds))
    if rep == "waveform":
        return (1, samples)
    n_fft = 2 ** int(round(np.log2(rate * 0.032)))  # 32 ms frames every 10 ms
    return (1, min(64, n_fft // 4), 1 + samples // (rate // 100))


@pytest.mark.parametrize("rep", ["logmel", "waveform"])
@pytest.mark.parametrize("rate, seconds", [(16000, 1.0), (11025, 1.0), (22050, 0.5),
                                           (4000, 0.25), (1000, 2.0), (48000, 4.0)])
def test_generator_makes_clips_of_the_asked_length(rep, rate, seconds):
    mod, opts = _audio(sample_rate=rate, clip_seconds=seconds, representation=rep)
    gen = mod.build_generator(6, opts)
    assert gen.data_shape == _shape(rep, rate, seconds)
    assert gen(torch.randn(2, 6)).shape == (2, *_shape(rep, rate, seconds))


@pytest.mark.parametrize("rep, field", [("waveform", (16,)), ("logmel", (4, 7))])
def test_a_longer_latent_sequence_gives_a_longer_sound(rep, field):
    mod, opts = _audio(sample_rate=16000, clip_seconds=1.0, latent_field=True,
                       representation=rep)
    gen = mod.build_generator(4, opts)
    assert gen.latent_shape == (4, *field)
    one = gen(torch.randn(1, 4, *field)).shape[-1]
    two = gen(torch.randn(1, 4, *field[:-1], 2 * field[-1])).shape[-1]
    assert one == _shape(rep, 16000, 1.0)[-1]
    # twice the latent steps: twice the length the layers make, less the same trimmed excess
    assert two - one == one + (gen.excess[-1] if rep == "logmel" else 0)


def _pictures_of(x: torch.Tensor, rate: int) -> torch.Tensor:
    return db_to_model(log_mel(x, rate)).unsqueeze(1)


@pytest.mark.parametrize("rep", ["logmel", "waveform"])
def test_writers_make_wavs_spectrograms_and_a_playable_grid(rep, tmp_path):
    mod, opts = _audio(sample_rate=RATE, clip_seconds=0.25, representation=rep)
    waves = torch.from_numpy(np.stack([_tone(f, 0.25, RATE) for f in (300, 500, 700)])
                             ).unsqueeze(1)
    x = waves if rep == "waveform" else _pictures_of(waves, RATE)
    files = mod.write_examples(x, tmp_path, "clip", opts)
    wavs = [p for p in files if p.suffix == ".wav"]
    assert len(wavs) == 3 and len([p for p in files if p.suffix == ".png"]) == 3
    info = sf.info(wavs[0])
    assert info.samplerate == RATE and info.frames == 1000
    grid = mod.write_grid(x.unsqueeze(0), tmp_path / "grid", opts)
    assert sorted(p.suffix for p in grid) == [".png", ".wav"]
    assert sf.info(tmp_path / "grid.wav").frames > 3000
    # the sound written is the tone: its spectrum peaks at the tone's pitch
    for wav, freq in zip(wavs, (300, 500, 700)):
        spectrum = np.abs(np.fft.rfft(sf.read(wav)[0]))
        assert abs(int(spectrum.argmax()) * RATE / 1000 - freq) <= 8


@pytest.mark.parametrize("rep", ["logmel", "waveform"])
def test_the_modality_contract_holds_for_each_representation(rep, tmp_path):
    from latentgen import testing

    mod = get_registry().modality("audio")
    # 8 kHz: 4 kHz clips of 0.25 s have spectrograms of 32 x 26, too coarse for Griffin-Lim
    # to give back within the contract's 2 % (3.3 dB RMS there, 1.6-1.9 dB from 8 kHz up)
    testing.check_modality(mod, tmp_path, options={"representation": rep,
                                                   "sample_rate": 8000, "clip_seconds": 0.5})


@pytest.mark.parametrize("rate", [8000, 16000, 22050])
def test_log_mel_pictures_become_sound_with_that_spectrogram(rate):
    from latentgen_audio.sounds import sounds

    waves = torch.from_numpy(sounds(8, rate, 1.0))
    db = log_mel(waves, rate)
    back = to_waves(db, rate, waves.shape[-1])
    assert back.shape == waves.shape and back.abs().max() <= 1
    # what a listener hears comes back (within 3 dB RMS; 1.6 dB typically); the phase not
    assert db_distance(log_mel(back, rate), db).max() < 3.0
    assert torch.equal(back, to_waves(db, rate, waves.shape[-1]))  # the same sound each time
    silence = to_waves(torch.full_like(db[:1], -60.0), rate, waves.shape[-1])
    assert silence.abs().max() < 0.01


def test_each_representation_reports_its_units_and_the_shared_log_mel_distance():
    mod = get_registry().modality("audio")
    wave, mel = (mod.make_options({"representation": r}) for r in ("waveform", "logmel"))
    assert "waveform" in mod.metric_units_for(wave) and mod.metric_scale_for(wave) == 1.0
    assert "dB" in mod.metric_units_for(mel) and mod.metric_scale_for(mel) == 40.0 ** 2
    waves = torch.from_numpy(np.stack([_tone(f, 1.0, 16000) for f in (300, 450)])
                             ).unsqueeze(1)
    pictures = _pictures_of(waves, 16000)
    # log_mel_db of the waveform reconstruction and of its spectrogram's agree: runs compare
    a = mod.extra_metrics(waves[:1], waves[1:], wave)["log_mel_db"]
    b = mod.extra_metrics(pictures[:1], pictures[1:], mel)["log_mel_db"]
    assert a.item() > 1 and abs(a.item() - b.item()) < 0.02 * a.item()


# -- the CLI -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def audio_run(sound_sets, tmp_path_factory) -> Path:
    return train_from_cli(sound_sets["train"], tmp_path_factory.mktemp("audio") / "run",
                          *TINY_AUDIO)


def test_synthesize_streams_wavs_of_the_run_rate(audio_run, cli, tmp_path):
    res = cli("synthesize", audio_run, "--n", "20", "--batch-size", "8", "--out", tmp_path / "s")
    assert res.code == 0, res
    wavs = sorted((tmp_path / "s").glob("sample_*.wav"))
    assert len(wavs) == 20
    waves = np.stack([sf.read(p)[0] for p in wavs])
    assert {sf.info(p).samplerate for p in wavs} == {RATE} and waves.shape == (20, 1000)
    assert np.abs(waves).max(axis=1).min() > 1e-3  # none silent
    assert np.std(waves, axis=0).mean() > 1e-4  # not all alike


def test_reconstruct_interpolate_evaluate_report(audio_run, sound_sets, cli, tmp_path):
    res = cli("reconstruct", audio_run, "--data", sound_sets["test"], "--n", "4", "--infer-steps",
              "20", "--out", tmp_path / "r")
    assert res.code == 0, res
    assert len(list((tmp_path / "r").glob("reconstruction_*.wav"))) == 4
    res = cli("interpolate", audio_run, "--pairs", "1", "--steps", "4", "--out", tmp_path / "i")
    assert res.code == 0, res
    assert len(list((tmp_path / "i").glob("pair00_step_*.wav"))) == 7  # 5 steps + 2 originals
    assert (tmp_path / "i" / "grid.wav").exists()
    res = cli("evaluate", audio_run, "--test-data", sound_sets["test"], "--negative-data",
              sound_sets["negative"], "--infer-steps", "20", "--json")
    assert res.code == 0, res
    result = json.loads(res.out)
    for name in ("train", "test", "negative"):
        assert result[name]["mse"] >= 0 and result[name]["log_mel_db"] >= 0
        assert name in result["pca"] and "log_mel_db" in result["pca_metrics"][name]
    res = cli("report", audio_run, "--infer-steps", "10", "--out", tmp_path / "report.html")
    assert res.code == 0, res
    page = (tmp_path / "report.html").read_text()
    assert '<audio controls preload="metadata" src="data:audio/wav;base64,' in page


def test_bad_audio_options_are_one_line_errors(cli, tmp_path):
    res = cli("train", "--modality", "audio", "--sample-rate", "10", "--out", tmp_path / "x")
    assert res.code == 2 and "--sample-rate must be between" in res.err
    assert not (tmp_path / "x").exists()
    res = cli("train", "--modality", "audio", "--representation", "mfcc", "--out",
              tmp_path / "y")
    assert res.code == 2 and "--representation must be waveform or logmel" in res.err
    assert len(res.err.strip().splitlines()) == 1 and not (tmp_path / "y").exists()


def test_each_representation_trains_with_its_own_defaults_unless_told(audio_run, sound_sets,
                                                                        cli, tmp_path):
    config = (audio_run / "config.toml").read_text()  # log-mel: the picture defaults
    assert "learn_sigma = true\n" in config and "lr_end = 0.1\n" in config
    res = cli("train", "--data", sound_sets["train"], "--out", tmp_path / "w", "--max-steps",
              "1", "--representation", "waveform", *TINY_AUDIO)
    assert res.code == 0, res
    assert "step_size = 0.1\n" in (tmp_path / "w" / "config.toml").read_text()
    res = cli("train", "--data", sound_sets["train"], "--out", tmp_path / "r", "--max-steps",
              "1", "--step-size", "0.2", "--representation", "waveform", *TINY_AUDIO)
    assert res.code == 0, res
    assert "step_size = 0.2\n" in (tmp_path / "r" / "config.toml").read_text()


def test_a_run_written_before_representations_reads_as_the_waveform_run_it_is(sound_sets,
                                                                               tmp_path):
    import latentgen

    run = train_from_cli(sound_sets["train"], tmp_path / "w", *TINY_AUDIO,
                         "--representation", "waveform", epochs=1)
    config = run / "config.toml"
    text = config.read_text()
    assert 'representation = "waveform"\n' in text
    config.write_text(text.replace('representation = "waveform"\n', ""))
    loaded = latentgen.load_run(run, "cpu")
    assert loaded.model.options.representation == "waveform"
    assert loaded.synthesize(2).shape == (2, 1, 1000)
    assert "waveform" in loaded.model.metric_units
