"""The official SMIS generator timed in a process of its own, exactly as its users run it.

Timing the official code inside our process cannot give it glibc's untouched behaviour: smisbench's
memory setting (``smisbench.host_memory``) has already grown a heap that is never trimmed, which the
official code then reuses. This script is started with a plain interpreter (it imports neither
smisbench nor this folder's package), builds ``DeepFashionGenerator`` from the checkout, loads the
state_dict and inputs it is given, and answers one line per request on stdin: ``time`` runs one
forward and prints its seconds; ``quit`` ends. It first saves one output for the caller to compare.

Usage: ``python official_worker.py CHECKOUT STATE.pt INPUTS.pt OUTPUT.pt``.
"""

from __future__ import annotations

import argparse
import sys
import time


def official_options() -> argparse.Namespace:
    """The options the official test script builds its DeepFashion generator from (CPU: no GPU ids)."""
    return argparse.Namespace(
        ngf=160, semantic_nc=8, label_nc=8, crop_size=256, aspect_ratio=1.0, num_upsampling_layers="more",
        use_vae=True, norm_G="spectralspadesyncbatch3x3", dataset_mode="deepfashion", no_instance=True,
        contain_dontcare_label=False, gpu_ids=[])


def main(argv: list[str]) -> int:
    checkout, state_path, inputs_path, output_path = argv
    sys.path.insert(0, checkout)
    import torch
    from models.networks.generator import DeepFashionGenerator

    net = DeepFashionGenerator(official_options()).eval()
    net.load_state_dict(torch.load(state_path, weights_only=True), strict=True)
    inputs = torch.load(inputs_path, weights_only=True)
    with torch.inference_mode():
        torch.save(net(inputs["semantics"], inputs["z"]), output_path)
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() != "time":
                break
            start = time.perf_counter()
            net(inputs["semantics"], inputs["z"])
            print(f"{time.perf_counter() - start:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
