"""Focus vs CMC, Adaptiv, FrameFusion and FastV on the embedded demo model: the references'
default configs, then each baseline at Focus' visual-token GEMM work (one knob per method,
``focus_jax.baselines.compare.KNOBS``, searched on the first ``--search`` questions), all on
the same held-out questions. Prints one table and writes ``--out`` (JSON) and ``--plot``.

    python -m benchmarks.baselines_equal_work --questions 500 --out baselines.json --plot baselines.png
"""

from __future__ import annotations

import argparse
import json
import time

from focus_jax.baselines import FastVConfig
from focus_jax.baselines.compare import compare, default_methods, equal_work, plot_comparison


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=500)
    ap.add_argument("--search", type=int, default=100, help="questions the knob search traces")
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--out", default=None)
    ap.add_argument("--plot", default=None)
    args = ap.parse_args()

    import focus_jax
    from focus_jax.data import generate_samples
    from focus_jax.demo_model import demo_model_dir
    from focus_jax.inference import model_focus_config
    from focus_jax.qa_eval import EVAL_SEED, eval_task_config

    t0 = time.time()
    model = focus_jax.from_pretrained(demo_model_dir())
    focus = model_focus_config(demo_model_dir())
    samples = generate_samples(eval_task_config(model.config.vision, 8), EVAL_SEED, args.questions, 0)
    methods = default_methods(focus)
    focus_row = compare(model, samples[: args.search], [("focus", focus)], args.batch_size).results[0]
    target = focus_row.work_fraction
    searched = {}
    for label, cfg in methods[2:]:
        base = FastVConfig(k=1) if cfg.method == "fastv" else cfg  # K=2 of 4 layers alone is 50 % of the work
        found, work = equal_work(model, base, samples[: args.search], target, batch_size=args.batch_size)
        searched[label] = {
            "config": found.to_dict(),
            "work_on_search": work,
            "within_2_points": abs(work - target) <= 0.02,
        }
        methods.append((f"{label}@focus-work", found))
        print(f"{label}: {found} work {work:.3f} (target {target:.3f})", flush=True)
    result = compare(model, samples, methods, args.batch_size)
    d = result.to_dict()
    d["equal_work_search"] = {"target": target, "questions": args.search, "methods": searched}
    d["seconds"] = time.time() - t0
    print(f"{'method':24s} {'accel':8s} {'acc':>6s} {'work':>6s} {'ms':>8s} {'mJ':>8s}")
    for r in d["methods"]:
        print(
            f"{r['label']:24s} {r['accelerator']:8s} {r['accuracy']:6.1%} {r['work_fraction']:6.1%} "
            f"{r['latency_s'] * 1e3:8.3f} {r['energy_mJ']:8.3f}"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(d, f, indent=1)
    if args.plot:
        plot_comparison(result, args.plot)


if __name__ == "__main__":
    main()
