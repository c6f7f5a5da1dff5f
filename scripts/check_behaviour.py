"""Behaviour fingerprint: run every verb of every built-in modality on fixed seeds and record
a digest of each file it writes (and of what ``evaluate --json`` prints), so that a change
meant to keep behaviour can be checked against the commit before it.

    python scripts/check_behaviour.py record before.json      # on the commit before
    python scripts/check_behaviour.py record after.json       # on the change
    python scripts/check_behaviour.py compare before.json after.json

Files are compared byte for byte, except what is measured time or a date: the ``seconds`` /
``examples_per_s`` columns of the metrics, timing keys of JSON, and the same numbers in the
report, with the runs' folder written as ``{w}``. Checkpoints are compared by their tensors
(equal weights, latents, optimiser state) and the rest of their contents (but Python's own
random state, which is unseeded and never drawn from). MP4 files are compared by frame count
and size: their decoded frames vary between two runs of one commit; the video verbs also
write GIFs here, which compare exactly. Layer forms are pinned (``LATENTGEN_FORMS=default``) and the
precision is fp32: a choice made by timing would otherwise differ between two runs.
About four minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

#: keys and columns that hold measured time, not behaviour
TIMED = re.compile(r"(^|_)(seconds|per_s|time|elapsed|share|created)($|_)")

STEPS: list[tuple[str, list[str]]] = [
    # 128 faces, 8 batches an epoch: the run stops mid-epoch 2 and resumes from there
    ("image-train", ["train", "--modality", "image", "--data", "builtin:faces-test",
                     "--epochs", "2", "--max-steps", "12", "--out", "{w}/image",
                     "--test-data", "builtin:houses", "--negative-data", "builtin:faces",
                     "--eval-every", "1",
                     "--eval-examples", "16", "--eval-steps", "4", "--eval-warm-steps", "2",
                     "--sample-every", "1", "--checkpoint-every", "1", "--precision", "fp32",
                     "--seed", "3"]),
    ("image-resume", ["train", "--resume", "--out", "{w}/image", "--epochs", "3",
                      "--max-steps", "24"]),
    ("image-synthesize", ["synthesize", "{w}/image", "--n", "20", "--out", "{w}/image/syn"]),
    ("image-reconstruct", ["reconstruct", "{w}/image", "--out", "{w}/image/rec",
                           "--data", "builtin:houses", "--n", "8", "--infer-steps", "5"]),
    ("image-reconstruct-mask", ["reconstruct", "{w}/image", "--out", "{w}/image/recm",
                                "--n", "8", "--mask", "block:8", "--infer-steps", "5"]),
    ("image-interpolate", ["interpolate", "{w}/image", "--out", "{w}/image/int",
                           "--steps", "4", "--pairs", "2", "--infer-steps", "5"]),
    ("image-evaluate", ["evaluate", "{w}/image", "--test-data", "builtin:houses",
                        "--negative-data", "builtin:faces", "--infer-steps", "5",
                        "--synthesis", "--n", "32", "--nll", "--nll-samples", "4",
                        "--train-examples", "all", "--json"]),
    ("image-evaluate-mask", ["evaluate", "{w}/image", "--infer-steps", "5", "--mask",
                             "pixels:0.3", "--train-examples", "32", "--json"]),
    ("image-score", ["score", "{w}/image", "--data", "builtin:houses", "--infer-steps", "5",
                     "--out", "{w}/image/scores.csv"]),
    ("image-report", ["report", "{w}/image", "--test-data", "builtin:houses",
                      "--negative-data", "builtin:faces", "--infer-steps", "5"]),
    ("image-prepare", ["prepare", "--modality", "image", "--data", "builtin:houses",
                       "--out", "{w}/houses.npy"]),
    ("audio-train", ["train", "--modality", "audio", "--epochs", "1", "--max-steps", "6",
                     "--out", "{w}/audio", "--precision", "fp32", "--seed", "1"]),
    ("audio-synthesize", ["synthesize", "{w}/audio", "--n", "4", "--out", "{w}/audio/syn"]),
    ("audio-reconstruct", ["reconstruct", "{w}/audio", "--out", "{w}/audio/rec", "--n", "4"]),
    ("audio-interpolate", ["interpolate", "{w}/audio", "--out", "{w}/audio/int",
                           "--steps", "3", "--pairs", "1"]),
    ("audio-evaluate", ["evaluate", "{w}/audio", "--train-examples", "16", "--synthesis",
                        "--n", "8", "--json"]),
    ("video-train", ["train", "--modality", "video", "--epochs", "1", "--max-steps", "4",
                     "--out", "{w}/video", "--precision", "fp32", "--seed", "2"]),
    ("video-synthesize", ["synthesize", "{w}/video", "--n", "3", "--out", "{w}/video/syn",
                          "--format", "gif"]),
    ("video-reconstruct", ["reconstruct", "{w}/video", "--out", "{w}/video/rec", "--n", "2",
                           "--infer-steps", "3"]),
    ("video-reconstruct-gif", ["reconstruct", "{w}/video", "--out", "{w}/video/recg",
                               "--n", "2", "--infer-steps", "3", "--format", "gif"]),
    ("video-interpolate", ["interpolate", "{w}/video", "--out", "{w}/video/int",
                           "--steps", "2", "--pairs", "1", "--infer-steps", "3",
                           "--format", "gif"]),
    ("video-evaluate", ["evaluate", "{w}/video", "--train-examples", "8", "--json"]),
]


def _untimed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if not TIMED.search(str(k))}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _csv(text: str) -> str:
    rows = [line.split(",") for line in text.splitlines()]
    if not rows:
        return text
    keep = [i for i, name in enumerate(rows[0]) if not TIMED.search(name)]
    return "\n".join(",".join(r[i] for i in keep if i < len(r)) for r in rows)


#: the folder the runs are in, written as ``{w}`` wherever a file names a path inside it
_WORK = ["{w}"]


def _placed(text: str) -> str:
    return text.replace(_WORK[0], "{w}")


def _video(path: Path) -> str:
    """An MP4 by its frame count and size: its frames, as encoded, vary from one run to the
    next of the same commit (the GIFs of the same clips compare exactly)."""
    import av

    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return f"{len(frames)} frames of {frames[0].width}x{frames[0].height}"


def _checkpoint(path: Path) -> str:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=False)
    h = hashlib.sha256()

    def walk(key: str, value: Any) -> None:
        # measured time, and Python's own random state (unseeded; latentgen never draws from it)
        if TIMED.search(key.rpartition(".")[2]) or key.startswith(".rng.python"):
            return
        if isinstance(value, torch.Tensor):
            h.update(f"{key}:{value.dtype}:{tuple(value.shape)}".encode())
            h.update(value.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            for k in sorted(value, key=str):
                walk(f"{key}.{k}", value[k])
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{key}.{i}", v)
        else:
            h.update(_placed(f"{key}={value!r}").encode())

    walk("", state)
    return h.hexdigest()[:16]


def fingerprint(path: Path) -> str:
    suffix = path.suffix
    if suffix == ".pt":
        return _checkpoint(path)
    if suffix == ".mp4":
        return _video(path)
    data = path.read_bytes()
    if suffix in (".csv", ".jsonl", ".json", ".html", ".toml"):
        data = _placed(data.decode()).encode()
    if suffix == ".csv":
        return _digest(_csv(data.decode()).encode())
    if suffix == ".jsonl":
        lines = [json.dumps(_untimed(json.loads(x)), sort_keys=True)
                 for x in data.decode().splitlines() if x.strip()]
        return _digest("\n".join(lines).encode())
    if suffix == ".json":
        return _digest(json.dumps(_untimed(json.loads(data)), sort_keys=True).encode())
    if suffix == ".html":
        return _digest(_html_untimed(data.decode()).encode())
    return _digest(data)


def _html_untimed(text: str) -> str:
    """The report without the timed columns of its tables (the last metrics row)."""

    def table(match: re.Match[str]) -> str:
        rows = re.findall(r"<tr>(.*?)</tr>", match.group(0))
        cells = [re.findall(r"<t[hd]>(.*?)</t[hd]>", row) for row in rows]
        if not cells:
            return match.group(0)
        keep = [i for i, name in enumerate(cells[0]) if not TIMED.search(name)]
        return "<table>" + "".join("<tr>" + "|".join(r[i] for i in keep if i < len(r)) +
                                   "</tr>" for r in cells) + "</table>"

    return re.sub(r"<table>.*?</table>", table, text)


def files_of(work: Path) -> dict[str, str]:
    return {str(path.relative_to(work)): fingerprint(path) for path in sorted(work.rglob("*"))
            if path.is_file() and path.name != "forms.json"}


def record(out: Path, work: Path) -> None:
    _WORK[0] = str(work)
    env = {**os.environ, "LATENTGEN_FORMS": "default", "PYTHONHASHSEED": "0",
           "LATENTGEN_FORMS_CACHE": str(work / "forms.json"), "NO_COLOR": "1",
           "COLUMNS": "200"}
    found: dict[str, Any] = {"steps": {}, "files": {}}
    for name, args in STEPS:
        argv = [sys.executable, "-m", "latentgen", *(a.format(w=work) for a in args)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        if "--json" in args:
            found["steps"][name] = _untimed(json.loads(_placed(done.stdout)))
        print(f"{name}: ok", file=sys.stderr)
    found["files"] = files_of(work)
    out.write_text(json.dumps(found, indent=1, sort_keys=True))


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def compare(a: Path, b: Path) -> int:
    left, right = _flat(json.loads(a.read_text())), _flat(json.loads(b.read_text()))
    bad = [(k, left.get(k, "<absent>"), right.get(k, "<absent>"))
           for k in sorted(set(left) | set(right)) if left.get(k) != right.get(k)]
    for key, x, y in bad:
        print(f"differs: {key}: {x} -> {y}")
    print(f"{len(left)} entries, {len(bad)} differ")
    return 1 if bad else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    r = sub.add_parser("record")
    r.add_argument("out", type=Path)
    r.add_argument("--work", type=Path, default=None,
                   help="folder for the runs (default: a temporary one)")
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    h = sub.add_parser("rehash", help="fingerprint the files of a kept --work folder again "
                       "(after a change to this script), keeping the recorded outputs")
    h.add_argument("recorded", type=Path)
    h.add_argument("work", type=Path)
    args = parser.parse_args()
    if args.verb == "rehash":
        found = json.loads(args.recorded.read_text())
        _WORK[0] = str(args.work.resolve())
        found["steps"] = json.loads(_placed(json.dumps(found["steps"])))
        found["files"] = files_of(args.work.resolve())
        args.recorded.write_text(json.dumps(found, indent=1, sort_keys=True))
        return
    if args.verb == "compare":
        sys.exit(compare(args.a, args.b))
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=False)
        record(args.out.resolve(), args.work.resolve())
    else:
        with tempfile.TemporaryDirectory() as tmp:
            record(args.out.resolve(), Path(tmp))


if __name__ == "__main__":
    main()
