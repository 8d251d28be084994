"""Pack what `scripts/device_check.py` needs on a GPU machine into one folder (default `.dev/`).

Usage (repository root; add the folder to `.git/info/exclude` and name it in the device tool's
`carry`)::

    python3 scripts/make_device_bundle.py [--out .dev] [--data ../shared/data] [--models ~/.cache/snnbalance/models]

It writes:

* ``whl/``: wheels of the packages the GPU image lacks (spikingjelly, loguru), fetched with pip;
* ``models/``: the four trained paper networks and their provenance records, from the reproduce
  cache (train them first: ``snnbalance reproduce`` does, or ``snnbalance train``);
* ``data/``: MNIST and Fashion-MNIST in torchvision's layout, gzipped, with every test image and
  only the training images the study and the bench read (the sweep slice, the data-based
  calibration draws); the other training images are zeroed, which gzip turns into almost
  nothing, so the bundle stays far below the tool's 64 MiB. Nothing that reads those images
  (training) may run on the bundle.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

NETWORKS = ("mlp-mnist-s0-e20", "cnn-mnist-s0-e15", "mlp-fashion-mnist-s0-e20", "cnn-fashion-mnist-s0-e15")
WHEELS = ("spikingjelly==2.0.0", "loguru==0.7.3")
FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-labels-idx1-ubyte", "train-images-idx3-ubyte")


def used_training_images(n_train: int = 60000) -> np.ndarray:
    """Indices of the training images the study (sweep, calibration) and the bench/tests read."""
    from snnbalance.data import calibration_slice
    from snnbalance.reproduce import StudyConfig, split_indices

    sweep, calib = split_indices(n_train, StudyConfig())
    keep = set(sweep.tolist()) | set(calib.tolist())
    for n in (1000, 500, 64):  # bench and test calibration draws
        keep |= set(calibration_slice(np.arange(n_train), n, seed=0).tolist())
    return np.array(sorted(keep))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path(".dev"))
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--models", type=Path, default=Path.home() / ".cache" / "snnbalance" / "models")
    args = ap.parse_args()
    out = args.out
    (out / "whl").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            "--platform",
            "manylinux2014_x86_64",
            "-d",
            str(out / "whl"),
            *WHEELS,
        ],
        check=True,
    )
    (out / "models").mkdir(exist_ok=True)
    for stem in NETWORKS:
        for ext in (".pt", ".json"):
            src = args.models / f"{stem}{ext}"
            if not src.is_file():
                sys.exit(f"{src} is missing: train the paper networks first (snnbalance reproduce)")
            shutil.copy(src, out / "models" / src.name)
    keep = used_training_images()
    for folder in ("MNIST", "FashionMNIST"):
        dst = out / "data" / folder / "raw"
        dst.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            raw = (args.data / folder / "raw" / name).read_bytes()
            if name.startswith("train-images"):
                images = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 784).copy()
                mask = np.zeros(len(images), dtype=bool)
                mask[keep] = True
                images[~mask] = 0
                raw = raw[:16] + images.tobytes()
            with gzip.open(dst / f"{name}.gz", "wb", compresslevel=9) as f:
                f.write(raw)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {size / 2**20:.1f} MiB ({len(keep)} training images kept per dataset)")


if __name__ == "__main__":
    main()
