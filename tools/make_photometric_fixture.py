#!/usr/bin/env python
"""Write tests/fixtures/mmseg_photometric/photometric.npz: mmsegmentation 1.2.2's own
`PhotoMetricDistortion` output for fixed images and seeds, which tests/test_mapper.py compares
`dfr.data.PhotometricDistortion` with (same seed -> same draws -> the same uint8 image).

mmsegmentation is a reference, never a dependency: run this once with an interpreter that can
import it (docs/PARITY.md; mmcv-lite and a stand-in `mmcv.ops`, as
tools/check_mmseg_parity.py does), e.g.

    /work/mmseg_venv/bin/python tools/make_photometric_fixture.py

The image: a 24x24 crop of tests/fixtures/real_voc/jpg/2007_000032.jpg (decoded by OpenCV,
stored as decoded, so the JPEG decoder does not matter) stacked on an 8x24 ramp holding
0 and 255 in every channel (the clipping ends). mmseg reads BGR; the fixture stores the RGB
input and mmseg's output converted to RGB.
"""
import argparse
from pathlib import Path

import cv2
import numpy as np
from check_mmseg_parity import _install_mmcv_ops_stand_in

REPO = Path(__file__).resolve().parents[1]
JPEG = REPO / "tests/fixtures/real_voc/jpg/2007_000032.jpg"
OUT = REPO / "tests/fixtures/mmseg_photometric/photometric.npz"
SEEDS = 64  # 2^6 branch combinations (brightness, mode, contrast, saturation, hue) on average


def input_image() -> np.ndarray:
    """(32, 24, 3) uint8 BGR: a photo crop over a ramp with 0 and 255 in every channel."""
    photo = cv2.imread(str(JPEG), cv2.IMREAD_COLOR)[100:124, 200:224]
    x = np.linspace(0, 255, 24).round().astype(np.uint8)
    ramp = np.stack([np.tile(x, (8, 1)), np.tile(x[::-1], (8, 1)), np.full((8, 24), 128)], -1)
    ramp[:2] = 0
    ramp[2:4] = 255
    return np.ascontiguousarray(np.concatenate([photo, ramp.astype(np.uint8)], 0))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default=str(OUT), help="the fixture file to write")
    args = p.parse_args(argv)
    _install_mmcv_ops_stand_in()
    import mmseg
    from mmseg.datasets.transforms import PhotoMetricDistortion

    bgr = input_image()
    aug = PhotoMetricDistortion()  # mmseg defaults: 32, (0.5, 1.5), (0.5, 1.5), 18
    outputs, next_draw = [], []
    for seed in range(SEEDS):
        np.random.seed(seed)
        out = aug.transform({"img": bgr.copy()})["img"]
        assert out.dtype == np.uint8 and out.shape == bgr.shape
        outputs.append(out[..., ::-1])
        next_draw.append(np.random.rand())  # the number of draws must match too
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        image=bgr[..., ::-1],
        seeds=np.arange(SEEDS),
        outputs=np.stack(outputs),
        next_draw=np.array(next_draw),
        mmseg_version=np.array(mmseg.__version__),
        numpy_version=np.array(np.__version__),
        opencv_version=np.array(cv2.__version__),
    )
    changed = sum(int((o != bgr[..., ::-1]).any()) for o in outputs)
    print(f"wrote {args.out}: {SEEDS} seeds ({changed} change the image), mmseg {mmseg.__version__}")


if __name__ == "__main__":
    main()
