"""INT8 Focus on the embedded demo model: integer SIC and SEC decisions (``focus_jax.quant``,
the arithmetic of the generated SIC and SEC units) vs float, and held-out accuracy dense /
float Focus / INT8 Focus (the paper's INT8 study, ``int8_focus.csv``).

The INT8 model is ``with_focus(focus, arithmetic="int8", capture=AgreementStats())``: every
SIC (before and after SEC's pruning) and every SEC layer decides in integers, and the
capture compares each input's integer decisions with the float ones. Prints the agreement of
the similar masks and group indices over every SIC input of the prefills, the largest
distance to the threshold of a disagreeing vector next to the measured quantisation error of
the cosine, the fraction of SEC's kept tokens both arithmetics keep, and the exact-match
accuracy of each variant. Each variant runs in its own process.

    python benchmarks/int8_focus.py [--questions 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

# benchmarks/costmodel.py would shadow the costmodel package: the repository root, not
# benchmarks/, goes first on the path (as benchmarks/costmodel.py does)
sys.path[:] = [str(Path(__file__).resolve().parents[1])] + [
    p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent
]

VARIANTS = ("dense", "float_focus", "int8_focus")


def run_variant(variant: str, questions: int) -> dict:
    import focus_jax
    from focus_jax.data import build_tokenizer, generate_samples, score_samples
    from focus_jax.demo_model import demo_model_dir
    from focus_jax.inference import model_focus_config
    from focus_jax.qa_eval import EVAL_SEED, answer_questions, eval_task_config
    from focus_jax.quant_demo import AgreementStats

    directory = demo_model_dir()
    focus = model_focus_config(directory)
    stats = AgreementStats() if variant == "int8_focus" else None
    model = focus_jax.from_pretrained(directory).with_focus(
        None if variant == "dense" else focus,
        arithmetic="int8" if stats is not None else "float",
        capture=stats,
    )
    task = eval_task_config(model.config.vision, 8)
    samples = []
    for start in range(0, questions, 50):
        samples += generate_samples(task, EVAL_SEED, min(50, questions - start), start)
    tok = build_tokenizer()
    t = time.perf_counter()
    answers = []
    for start in range(0, len(samples), 50):
        answers += answer_questions(model, tok, samples[start:start + 50])[0]
    report = score_samples(answers, samples).to_dict()
    out = {
        "variant": variant,
        "accuracy": report["accuracy"],
        "correct": report["correct"],
        "total": report["total"],
        "per_family": {f: r["accuracy"] for f, r in report["per_family"].items()},
        "seconds": time.perf_counter() - t,
    }
    if stats is not None:
        out["agreement"] = stats.to_dict()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--variant", choices=VARIANTS, help="run one variant in this process (JSON on stdout)")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.questions)))
        return
    results = {}
    for variant in VARIANTS:
        proc = subprocess.run(
            [sys.executable, __file__, "--variant", variant, "--questions", str(args.questions)],
            capture_output=True,
            text=True,
            check=True,
        )
        results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
