"""Cost of ``keras_recipes.data.check_images``: seconds per thousand images, and the ratio to a
plain one-thread loop that decodes the same files (the reference, timed in the same run).

Usage:

    python benchmarks/bench_check_images.py --images 1000 --size 500x375

Results are recorded in ``benchmarks/results/check_images.md``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--size", default="500x375", help="WIDTHxHEIGHT of the JPEG files")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    from PIL import Image

    from keras_recipes.data import check_images

    w, h = (int(v) for v in args.size.split("x"))
    root = Path(tempfile.mkdtemp(prefix="bench_check_images_"))
    rng = np.random.default_rng(0)
    for i in range(args.images):  # smooth photo-like content, JPEG quality 85
        small = rng.integers(0, 255, (16, 16, 3)).astype("uint8")
        Image.fromarray(small).resize((w, h), Image.BILINEAR).save(root / f"{i:05d}.jpg",
                                                                   quality=85)
    paths = sorted(root.glob("*.jpg"))

    def loop():  # the reference: what a careful script would do, one file after another
        for path in paths:
            with Image.open(path) as image:
                image.convert("RGB").load()

    variants = {"loop_pil": loop,
                "check_images_pil": lambda: check_images(paths, decoder="pil"),
                "check_images_tensorflow": lambda: check_images(paths, decoder="tensorflow")}
    check_images(paths[:4], decoder="tensorflow")  # TensorFlow imported before timing
    times = {k: [] for k in variants}
    for rep in range(args.repeats):
        order = list(variants)[rep % 3:] + list(variants)[: rep % 3]
        for name in order:
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    print(f"{args.images} JPEG files {w}x{h}, {os.cpu_count()} CPUs, best of {args.repeats}")
    for name, t in best.items():
        print(f"{name:24s} {t:7.2f} s   {1000 * t / args.images:6.2f} s per 1000 images   "
              f"{t / best['loop_pil']:.2f} x loop_pil")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
