"""``focus-jax run``: the JSON report on a tiny random model, --no-focus, --demo, and every
input error (one line, exit status 1, no traceback).

One random demo-shaped checkpoint serves the whole module; runs share jit compilations
(same shapes), so only the first Focus run pays the ~1 minute of compiling.
"""

import json
import math
import os
import subprocess
import sys

import av
import jax
import numpy as np
import pytest
from typer.testing import CliRunner

from focus_jax.cli import app
from focus_jax.demo_model import DEMO_FOCUS, demo_model_config, demo_task_config, write_model_dir
from focus_jax.trace import GEMM_NAMES

runner = CliRunner()
QUESTION = "what color is the moving shape?"
NEW_TOKENS = 4
FIELDS = {"answer", "answer_dense", "frames", "visual_tokens", "kept_tokens_per_layer", "sparsity_per_gemm",
          "work_fraction", "wall_time_s", "modeled"}  # fmt: skip


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from focus_jax.models.llava_onevision.modeling import init_params

    cfg = demo_model_config()
    # unsafe_rbg: ~6 s of compiling random draws instead of ~15 s with threefry; with key 0
    # the random weights answer a word ("the ..."), not only newlines, so comparing answers
    # below compares something
    key = jax.random.key(0, impl="unsafe_rbg")
    return write_model_dir(tmp_path_factory.mktemp("model"), cfg, init_params(cfg, key))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from focus_jax.data import generate_sample, write_video

    sample = generate_sample(demo_task_config(), 0, 4)
    assert sample.question == QUESTION
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", sample.frames, fps=8)


def _run(*args):
    return runner.invoke(app, ["run", *map(str, args)])


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def report(model_dir, clip):
    return _json(_run(clip, "-p", QUESTION, "--model", model_dir, "--max-new-tokens", NEW_TOKENS, "--json"))


def test_report_fields_and_focus_statistics(report, clip, model_dir):
    assert FIELDS <= set(report)
    assert (report["video"], report["model"], report["frames"], report["visual_tokens"]) == (
        str(clip),
        str(model_dir),
        8,
        128,
    )
    assert report["focus_config"] == DEMO_FOCUS.to_dict()  # the checkpoint's focus_config.json
    # SEC at the last layer (3) keeps int(128 * 0.25) tokens for its MLP; all 128 enter every layer
    assert report["kept_tokens_per_layer"] == [128, 128, 128, 128]
    assert report["kept_tokens_per_sec_layer"] == [{"layer": 3, "kept_tokens": 32}]
    assert list(report["sparsity_per_gemm"]) == list(GEMM_NAMES)
    assert all(0 <= s <= 1 for s in report["sparsity_per_gemm"].values())
    assert 0 < report["work_fraction"] < 1

    wall = report["wall_time_s"]
    for side in ("dense", "focus"):
        assert 0 < wall[side]["run"] and 0 < wall[side]["first_call"]
    assert math.isclose(wall["speedup"], wall["dense"]["run"] / wall["focus"]["run"])

    m = report["modeled"]
    assert m["mode"] == "corrected" and 1 <= m["decode_tokens"] <= NEW_TOKENS
    assert m["text_tokens"] == report["prompt_tokens"] - 128  # prompt text + the video's newline token
    for side in ("dense", "focus"):
        assert m[side]["time_s"] > 0 and m[side]["energy_mJ"]["total"] > 0 and m[side]["total_cycles"] > 0
    assert math.isclose(m["speedup"], m["dense"]["time_s"] / m["focus"]["time_s"])
    assert math.isclose(m["energy_ratio"], m["focus"]["energy_mJ"]["total"] / m["dense"]["energy_mJ"]["total"])


def test_answers_match_generate_on_the_training_inputs(report, model_dir, clip):
    """The command's chat-template prompt and preprocessing equal the task pipeline's."""
    import focus_jax
    from focus_jax.data import build_tokenizer, encode_prompt, preprocess_frames
    from focus_jax.video import decode_video

    model = focus_jax.from_pretrained(model_dir)
    tok = build_tokenizer()
    ids = np.asarray([encode_prompt(tok, QUESTION, model.config.video_token_count(8))])
    assert ids.shape[1] == report["prompt_tokens"]
    pixels = preprocess_frames(decode_video(clip, 8), 64)[None]
    answers = [
        tok.decode(
            m.generate(ids, pixel_values_videos=pixels, max_new_tokens=NEW_TOKENS)[0], skip_special_tokens=True
        ).strip()
        for m in (model, model.with_focus(DEMO_FOCUS))
    ]
    assert answers == [report["answer_dense"], report["answer"]]
    assert report["answer_dense"]  # a non-empty answer: the comparison means something


def test_no_focus_reports_dense_only(model_dir, clip):
    out = _json(
        _run(clip, "-p", QUESTION, "--model", model_dir, "--frames", 2, "--max-new-tokens", 2, "--no-focus", "--json")
    )
    assert (out["frames"], out["visual_tokens"]) == (2, 32)
    assert out["answer"] == out["answer_dense"]
    for key in (
        "focus_config",
        "kept_tokens_per_layer",
        "kept_tokens_per_sec_layer",
        "sparsity_per_gemm",
        "work_fraction",
    ):
        assert out[key] is None
    assert out["wall_time_s"]["focus"] is None and out["wall_time_s"]["speedup"] is None
    m = out["modeled"]
    assert m["dense"]["time_s"] > 0 and m["focus"] is None and m["speedup"] is None and m["energy_ratio"] is None


def test_table_output(model_dir, clip):
    result = _run(clip, "-p", QUESTION, "--model", model_dir, "--max-new-tokens", NEW_TOKENS)
    assert result.exit_code == 0, result.output
    for phrase in (
        "answer (Focus)",
        "answer (dense)",
        "128, 128, 128, 128",
        "SEC: tokens kept",
        "SIC: sparsity per GEMM",
        "down_proj",
        "wall time, compiled",
        "modeled energy",
        "x speed-up",
    ):
        assert phrase in result.stdout, phrase


def test_save_trace_viz_savings_and_projection(model_dir, clip, tmp_path):
    """--save-trace writes the trace the modeled cost was priced from (Workload.from_trace),
    --viz a PNG; the savings split and the 7B projection are consistent with the trace."""
    import costmodel as cm
    from focus_jax.trace import FocusTrace

    trace_path, png = tmp_path / "trace.npz", tmp_path / "fates.png"
    out = _json(
        _run(
            clip,
            "-p",
            QUESTION,
            "--model",
            model_dir,
            "--max-new-tokens",
            NEW_TOKENS,
            "--save-trace",
            trace_path,
            "--viz",
            png,
            "--viz-gemm",
            "down_proj",
            "--json",
        )
    )
    trace = FocusTrace.load(trace_path)
    m = out["modeled"]
    wl = cm.Workload.from_trace(trace, decode_tokens=m["decode_tokens"])
    priced = cm.simulate(cm.focus(), wl, mode="corrected").to_dict()
    assert priced["total_cycles"] == m["focus"]["total_cycles"] and priced["energy_mJ"] == m["focus"]["energy_mJ"]
    assert trace.work_fraction() == pytest.approx(out["work_fraction"])
    sv = out["savings"]
    assert sv["cpu_saved"] + sv["accelerator_only_saved"] == pytest.approx(1 - out["work_fraction"])
    assert 0 < sv["cpu_saved"] and 0 < sv["accelerator_only_saved"]  # SEC at layer 3 and SIC both saved work
    p = out["projection"]
    assert (p["model"], p["visual_tokens"], p["text_tokens"], p["decode_tokens"]) == (
        "llava-onevision-7b", 8 * 196, m["text_tokens"], m["decode_tokens"])  # fmt: skip
    assert p["focus"]["time_s"] > 0 and p["dense"]["time_s"] > m["dense"]["time_s"]
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_focus_configuration_choice(model_dir, tmp_path):
    from focus_jax import paper_config
    from focus_jax.inference import choose_focus

    assert choose_focus(model_dir) == DEMO_FOCUS  # the checkpoint's focus_config.json
    assert choose_focus(model_dir, no_focus=True) is None
    path = tmp_path / "focus.json"
    mine = DEMO_FOCUS.replace(sec_layers=(3,), sec_alphas=(0.5,), similarity_threshold=0.8)
    path.write_text(json.dumps(mine.to_dict()))
    assert choose_focus(model_dir, path) == mine
    bare = tmp_path / "bare"  # no focus_config.json: the paper's setting, cut to the 4 layers
    bare.mkdir()
    (bare / "config.json").write_text((model_dir / "config.json").read_text())
    paper = paper_config("llava_onevision")
    assert paper.sec_layers == (2, 5, 8, 16, 25)
    assert choose_focus(bare) == paper.replace(sec_layers=(2,), sec_alphas=(0.4,))


def test_demo_shows_real_footage_and_a_synthetic_clip_with_its_answer(model_dir, tmp_path):
    from focus_jax.video import demo_video_path

    out = _json(
        _run("--demo", "--model", model_dir, "--max-new-tokens", NEW_TOKENS, "--json", "--viz", tmp_path / "viz")
    )
    real, synthetic = out["demo"]
    assert sorted(p.name for p in (tmp_path / "viz").iterdir()) == ["real.png", "synthetic.png"]
    assert real["video"] == str(demo_video_path()) and "expected" not in real
    assert synthetic["expected"] and synthetic["prompt"] == QUESTION
    for r in (real, synthetic):
        assert (
            FIELDS <= set(r)
            and r["frames"] == 8
            and r["kept_tokens_per_sec_layer"] == [{"layer": 3, "kept_tokens": 32}]
        )


def _empty_video(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()  # a header, no frame
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.mark.parametrize(
    "case,message",
    [
        ("missing video", "video not found"),
        ("not a video", "cannot decode"),
        ("zero frames", "no video stream|no decodable frames"),
        ("no video argument", "give either a VIDEO path or --demo"),
        ("video and --demo", "give either a VIDEO path or --demo"),
        ("no prompt", "the prompt is empty"),
        ("empty prompt", "the prompt is empty"),
        ("blank prompt", "the prompt is empty"),
        ("blank demo prompt", "the prompt is empty"),
        ("prompt with a video token", "one video placeholder"),
        ("frames 0", "--frames must be >= 1, got 0"),
        ("max-new-tokens 0", "--max-new-tokens must be >= 1"),
        ("model dir missing", "checkpoint directory not found"),
        ("model dir empty", "has no config.json"),
        ("garbage config.json", "is not valid JSON"),
        ("not a llava config", "model_type 'bert'"),
        ("config without weights", "--model"),
        ("focus config missing", "--focus-config file not found"),
        ("focus config not JSON", "is not a valid Focus configuration"),
        ("focus config unknown field", "unknown FocusConfig fields: alpha"),
        ("focus config bad value", "similarity_threshold must be a number"),
        ("focus config not an object", "must hold a JSON object"),
        ("SEC layer beyond the model", "SEC layers \\[1, 4\\] do not fit the model's 4 decoder layers"),
        ("focus config with --no-focus", "not both"),
        ("--viz with --no-focus", "drop --no-focus"),
        ("unknown --viz-gemm", "--viz-gemm must be one of"),
    ],
)
def test_errors_are_one_line(case, message, model_dir, clip, tmp_path):
    import re

    video, prompt, extra = clip, ["-p", QUESTION], []
    model = model_dir
    focus = tmp_path / "focus.json"
    if case == "missing video":
        video = tmp_path / "nothing.mp4"
    elif case == "not a video":
        video = tmp_path / "noise.mp4"
        video.write_bytes(np.random.default_rng(0).bytes(4096))
    elif case == "zero frames":
        video = _empty_video(tmp_path / "empty.mp4")
    elif case == "no video argument":
        video = None
    elif case == "video and --demo":
        extra = ["--demo"]
    elif case == "no prompt":
        prompt = []
    elif case in ("empty prompt", "blank prompt"):
        prompt = ["-p", "" if case == "empty prompt" else "  \n "]
    elif case == "blank demo prompt":
        video, prompt, extra = None, ["-p", " "], ["--demo"]
    elif case == "prompt with a video token":
        prompt = ["-p", "<video> what color is the moving shape?"]
    elif case == "frames 0":
        extra = ["--frames", "0"]
    elif case == "max-new-tokens 0":
        extra = ["--max-new-tokens", "0"]
    elif case == "--viz with --no-focus":
        extra = ["--no-focus", "--viz", str(tmp_path / "v.png")]
    elif case == "unknown --viz-gemm":
        extra = ["--viz", str(tmp_path / "v.png"), "--viz-gemm", "k_proj"]
    elif case == "model dir missing":
        model = tmp_path / "no-model"
    elif case == "model dir empty":
        model = tmp_path / "empty-model"
        model.mkdir()
    elif case in ("garbage config.json", "not a llava config", "config without weights"):
        model = tmp_path / "bad-model"
        model.mkdir()
        config = {"garbage config.json": "{not json", "not a llava config": json.dumps({"model_type": "bert"})}
        (model / "config.json").write_text(config.get(case) or (model_dir / "config.json").read_text())
    elif case.startswith("focus config") or case == "SEC layer beyond the model":
        contents = {
            "focus config not JSON": "{",
            "focus config unknown field": json.dumps({"alpha": 1}),
            "focus config bad value": json.dumps({"similarity_threshold": 2}),
            "focus config not an object": "[0.9]",
            "focus config with --no-focus": json.dumps({}),
        }
        if case == "SEC layer beyond the model":
            contents[case] = json.dumps(DEMO_FOCUS.replace(sec_layers=(1, 4), sec_alphas=(0.5, 0.25)).to_dict())
        if case != "focus config missing":
            focus.write_text(contents[case])
        extra = ["--focus-config", str(focus)] + (["--no-focus"] if case == "focus config with --no-focus" else [])
    args = ([] if video is None else [video]) + prompt + ["--model", model, "--json"] + extra
    result = _run(*args)
    assert result.exit_code == 1, (case, result.output)
    assert result.stdout == ""
    assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1, result.stderr
    assert re.search(message, result.stderr), result.stderr
    assert "Traceback" not in result.output


def test_console_script_exits_with_one_line(model_dir, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "focus_jax.cli",
            "run",
            str(tmp_path / "missing.mp4"),
            "-p",
            QUESTION,
            "--model",
            str(model_dir),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, FOCUS_JAX_NO_HUGEPAGES="1"),
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"error: video not found: {tmp_path / 'missing.mp4'}\n"


def test_chat_template_from_the_processor_file(model_dir, tmp_path):
    """llava-hf checkpoints keep the chat template in chat_template.json, not with the tokenizer."""
    import shutil

    from focus_jax.data.tokenizer import CHAT_TEMPLATE
    from focus_jax.inference import encode_video_prompt, load_video_model

    moved = shutil.copytree(model_dir, tmp_path / "model")
    (moved / "chat_template.jinja").unlink()
    (moved / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}))
    vm = load_video_model(moved, None)
    assert vm.tokenizer.chat_template is None and vm.chat_template == CHAT_TEMPLATE
    original = load_video_model(model_dir, None)
    np.testing.assert_array_equal(encode_video_prompt(vm, QUESTION, 2), encode_video_prompt(original, QUESTION, 2))
    (moved / "chat_template.json").unlink()
    with pytest.raises(ValueError, match="has no chat template"):
        load_video_model(moved, None)


def test_run_with_a_baseline_method_reports_its_answer_work_and_cost(model_dir, clip):
    """``run --method fastv``: the baseline answers the same prompt; its kept tokens follow
    FastV's schedule (all before layer K, ``ceil((1 - R) N)``-ish after) and its work and
    modeled cost are those of ``baselines.compare.method_on_prompt``."""
    report = _json(_run(clip, "-p", QUESTION, "--model", model_dir, "--json", "--max-new-tokens", NEW_TOKENS,
                        "--no-focus", "--method", "fastv"))  # fmt: skip
    method = report["method"]
    assert method["method"] == "fastv" and isinstance(method["answer"], str)
    kept = np.asarray(method["kept_tokens_per_layer"])
    n = report["visual_tokens"]
    k = method["config"]["k"]
    assert kept.shape == (4, 2) and (kept[:k] == kept[0, 0]).all() and kept[0, 0] >= n
    assert (kept[k:] < kept[0, 0]).all(), kept  # FastV prunes after layer K
    assert 0 < method["work_fraction"] < 1
    assert method["modeled"]["accelerator"] == "dense" and method["modeled"]["time_s"] > 0
