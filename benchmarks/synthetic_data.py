"""Benchmark: throughput of the synthetic video QA pipeline, one CPU core.

Prints clips/second for each stage at a few (frames, resolution) settings: scene sampling
(``sample_spec``), rendering (``generate_sample``), training-batch assembly
(``make_batch``: tokenising + SigLIP preprocessing, per clip), and MP4 writing + decoding
(``write_video`` + ``decode_video``). Each figure is the median of ``--repeats`` runs over
``--clips`` clips, after a warm-up that loads the background photos.

    python benchmarks/synthetic_data.py [--clips 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from focus_jax.data import (
    TaskConfig,
    build_tokenizer,
    generate_samples,
    make_batch,
    sample_spec,
    video_token_count,
    write_video,
)
from focus_jax.video import decode_video

SETTINGS = [(8, 64, 64), (16, 96, 64), (8, 128, 128)]  # (frames, clip resolution, vision input size)


def _rate(fn, count: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return count / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tok = build_tokenizer()
    generate_samples(TaskConfig(), 0, 50)  # warm-up: photo loading and sprite caches

    print(
        f"{'frames':>6} {'res':>4} {'vision':>6} | {'specs/s':>8} {'clips/s':>8} {'batch clips/s':>13} "
        f"{'mp4 clips/s':>11}"
    )
    for frames, res, vision in SETTINGS:
        cfg = TaskConfig(num_frames=frames, resolution=res)
        n = args.clips
        specs = _rate(lambda: [sample_spec(cfg, 1, i) for i in range(n)], n, args.repeats)
        clips = _rate(lambda: generate_samples(cfg, 1, n), n, args.repeats)
        samples = generate_samples(cfg, 1, n)
        tokens = video_token_count(frames, vision, 8)
        batch = _rate(
            lambda: [
                make_batch(samples[i : i + 16], tok, num_video_tokens=tokens, image_size=vision)
                for i in range(0, n, 16)
            ],
            n,
            args.repeats,
        )
        with tempfile.TemporaryDirectory() as tmp:
            m = min(n, 40)

            def mp4():
                for i, s in enumerate(samples[:m]):
                    decode_video(write_video(Path(tmp) / f"{i}.mp4", s.frames), frames)

            video = _rate(mp4, m, args.repeats)
        print(f"{frames:>6} {res:>4} {vision:>6} | {specs:>8.0f} {clips:>8.0f} {batch:>13.0f} {video:>11.0f}")


if __name__ == "__main__":
    main()
