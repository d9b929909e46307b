"""Image-tower speed of every catalog checkpoint on this CPU, relative to SigLIP base-224.

Random weights of the real architectures (built from each entry's config: hidden size, depth,
heads, patch, resolution); speed does not depend on the weights' values. fp32, batch 8.

Every encoder layer of a ViT has the same shapes, so a tower's time is its 1-layer tower's
(patch embedding, one layer, pooling head) plus (depth - 1) times one more layer's, and each
is timed on its own: an so400m at 512 pixels takes seconds instead of minutes. SigLIP and
SigLIP 2 checkpoints of the same size, patch and resolution share one image tower, timed once.
The full-depth SigLIP base-224 is also run as it is, to show how close the sum comes (`check`).

Times are CPU seconds of this process (time.process_time, all its threads), not wall time:
on a shared machine (here 2 cores, a load average near 8) wall time measures the queue, while
the CPU time a forward needs stays put. OpenMP threads wait passively so that waiting is not
counted as work. The reference tower is timed again before every other tower, and each
tower's ratio is the median of all those reference timings over its own: contention still
moves CPU time by 10-20%, and pooling the reference keeps that noise on one side only.

    python benchmarks/model_speed.py            # print the table
    python benchmarks/model_speed.py --write    # also store the ratios in resources/models.json
    python benchmarks/model_speed.py --only google/siglip2-base-patch16-224
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its thread pool
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gallery_app.core.model_catalog import CatalogEntry, load_catalog, vision_config  # noqa: E402

REFERENCE = "google/siglip-base-patch16-224"
BATCH = 8


def _timed(run: Any) -> float:
    start = time.process_time()
    run()
    return time.process_time() - start


def tower_seconds(config: Any, depth: int) -> float:
    """Seconds per batch of `depth` layers: the 1-layer tower plus depth - 1 extra layers."""
    import copy

    import torch
    from transformers import SiglipVisionModel

    config = copy.deepcopy(config)
    config.num_hidden_layers = 1
    torch.manual_seed(0)
    model = SiglipVisionModel(config).eval()
    size = config.image_size
    pixels = torch.randn(BATCH, 3, size, size)
    layer = getattr(model, "vision_model", model).encoder.layers[0]  # 4.x wraps it
    tokens = (size // config.patch_size) ** 2
    hidden = torch.randn(BATCH, tokens, config.hidden_size)
    with torch.inference_mode():
        one_layer_tower = _timed(lambda: model(pixel_values=pixels))
        extra_layer = _timed(lambda: layer(hidden, None))
    return one_layer_tower + (depth - 1) * extra_layer


def full_depth_seconds(config: Any) -> float:
    import torch
    from transformers import SiglipVisionModel

    torch.manual_seed(0)
    model = SiglipVisionModel(config).eval()
    pixels = torch.randn(BATCH, 3, config.image_size, config.image_size)
    with torch.inference_mode():
        return _timed(lambda: model(pixel_values=pixels))


def tower_key(entry: CatalogEntry) -> tuple[int, int, int, int, int, int]:
    arch = entry.architecture
    return (
        arch.hidden_size,
        arch.intermediate_size,
        arch.layers,
        arch.heads,
        entry.patch,
        entry.resolution,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="store ratios in models.json")
    parser.add_argument("--only", action="append", default=[], help="a model id (repeatable)")
    parser.add_argument("--repeats", type=int, default=1, help="pairs per tower")
    args = parser.parse_args(argv)

    import torch

    catalog = load_catalog()
    entries = [e for e in catalog if not args.only or e.id in args.only or e.id == REFERENCE]
    reference = next(e for e in catalog if e.id == REFERENCE)
    print(
        f"# image tower, fp32, batch {BATCH}, random weights; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at the start",
        flush=True,
    )
    reference_config = vision_config(reference)
    tower_seconds(reference_config, reference.architecture.layers)  # warm-up: allocator, threads
    full = full_depth_seconds(reference_config)
    summed = tower_seconds(reference_config, reference.architecture.layers)
    print(
        f"check: {REFERENCE} full depth {full:.2f} CPU s per batch, summed from its parts "
        f"{summed:.2f} CPU s",
        flush=True,
    )
    print(f"{'model':45} {'cpu s':>8} {'images/s':>9}", flush=True)
    reference_runs = [summed]
    own: dict[tuple[int, ...], float] = {tower_key(reference): summed}
    for entry in entries:
        key = tower_key(entry)
        if key not in own:
            runs = []
            for _ in range(args.repeats):
                reference_runs.append(
                    tower_seconds(reference_config, reference.architecture.layers)
                )
                runs.append(tower_seconds(vision_config(entry), entry.architecture.layers))
            own[key] = statistics.median(runs)
        print(f"{entry.id:45} {own[key]:8.2f} {BATCH / own[key]:9.2f}", flush=True)
    reference_seconds = statistics.median(reference_runs)
    own[tower_key(reference)] = reference_seconds  # 1.00x by definition
    print(
        f"reference {REFERENCE}: {len(reference_runs)} runs, median {reference_seconds:.2f} CPU s, "
        f"min {min(reference_runs):.2f}, max {max(reference_runs):.2f}"
    )
    ratios: dict[str, float] = {}
    for entry in entries:
        ratios[entry.id] = round(reference_seconds / own[tower_key(entry)], 2)
        print(f"{entry.id:45} {ratios[entry.id]:5.2f}x", flush=True)
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")
    if args.write:
        path = ROOT / "resources" / "models.json"
        data = json.loads(path.read_text("utf-8"))
        for model in data["models"]:
            if model["id"] in ratios:
                model["relative_cpu_speed"] = ratios[model["id"]]
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", "utf-8")
        print(f"wrote {len(ratios)} ratios to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
