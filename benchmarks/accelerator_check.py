"""Does fp16 autocast keep image embeddings within cosine 0.999 of fp32 on this accelerator?

Builds the image tower of catalog checkpoints (real architectures, random weights: the check
is about the arithmetic, and the app repeats it at load time on the real weights), encodes the
same batch of images in fp32 and under fp16 autocast on CUDA or MPS, and prints the worst and
median cosine between the two, and the speed of each.

    python benchmarks/accelerator_check.py
    python benchmarks/accelerator_check.py --model google/siglip2-so400m-patch16-384 --batch 32

Without CUDA or MPS it says so and measures nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gallery_app.core.accelerator import (  # noqa: E402
    FP16_MIN_COSINE,
    image_autocast,
    image_cosines,
    pick_device,
)
from gallery_app.core.model_catalog import find, vision_config  # noqa: E402

DEFAULT_MODELS = (
    "google/siglip-base-patch16-224",
    "google/siglip2-base-patch16-224",
    "google/siglip2-large-patch16-384",
    "google/siglip2-so400m-patch16-512",
)


def check(model_id: str, device: str, batch: int, repeats: int) -> bool:
    import torch
    from transformers import SiglipVisionModel

    entry = find(model_id)
    if entry is None:
        raise SystemExit(f"{model_id} is not in the catalog (gallery-app models lists it)")
    torch.manual_seed(0)
    model = SiglipVisionModel(vision_config(entry)).eval().to(device)
    size = entry.resolution
    # Noise and smooth gradients: the two extremes of what photos put through the tower.
    noise = torch.rand(batch // 2, 3, size, size) * 2 - 1
    ramp = torch.linspace(-1, 1, size).view(1, 1, 1, size).expand(batch - batch // 2, 3, size, size)
    pixels = torch.cat([noise, ramp.contiguous()]).to(device)

    def encode(values: torch.Tensor) -> torch.Tensor:
        return model(pixel_values=values).pooler_output

    _, _, cosines = image_cosines(encode, pixels, device)
    timings = {}
    for name, fp16 in (("fp32", False), ("fp16", True)):
        runs = []
        with torch.inference_mode():
            for _ in range(repeats + 1):
                start = time.perf_counter()
                with image_autocast(device, fp16):
                    encode(pixels)
                if device == "cuda":
                    torch.cuda.synchronize()
                runs.append(time.perf_counter() - start)
        timings[name] = statistics.median(runs[1:])  # the first run warms kernels up
    worst = float(cosines.min())
    keeps = worst >= FP16_MIN_COSINE
    print(
        f"{model_id:40} worst cos {worst:.5f} median {float(statistics.median(cosines)):.5f} "
        f"{'keeps' if keeps else 'MOVES'} | fp32 {batch / timings['fp32']:.1f} img/s, "
        f"fp16 {batch / timings['fp16']:.1f} img/s ({timings['fp32'] / timings['fp16']:.2f}x)",
        flush=True,
    )
    return keeps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="catalog id (repeatable)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    device = pick_device()
    if device == "cpu":
        print("No CUDA or MPS device here: nothing measured (fp16 is only used on accelerators).")
        return 0
    import torch

    name = torch.cuda.get_device_name(0) if device == "cuda" else "Apple GPU"
    print(f"# {device} ({name}), torch {torch.__version__}, batch {args.batch}, random weights")
    results = [check(m, device, args.batch, args.repeats) for m in args.model or DEFAULT_MODELS]
    print(f"# {sum(results)} of {len(results)} keep image vectors within {FP16_MIN_COSINE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
