"""The synthetic video QA generator: validation, determinism, balance, and ground truth that the
frames really show (checked from the scene description and by a pixel-only solver)."""

import collections
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focus_jax.data import (
    ANSWERS,
    FAMILIES,
    TaskConfig,
    generate_sample,
    generate_samples,
    sample_spec,
    scene_questions,
)
from focus_jax.data.backgrounds import BACKGROUNDS, MAX_BACKGROUND_CHROMA, photo, render_background
from focus_jax.data.scene import COLORS, DIRECTIONS, SHAPES, object_masks, sprite
from focus_jax.data.task import COUNT_WORDS, QUESTION_TEMPLATES

from synthetic_oracle import solve

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- configuration

@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"num_frames": 3}, "num_frames"),
        ({"num_frames": 65}, "num_frames"),
        ({"num_frames": 8.0}, "num_frames"),
        ({"resolution": 46}, "resolution"),
        ({"resolution": 63}, "resolution"),
        ({"resolution": 1024}, "resolution"),
        ({"resolution": True}, "resolution"),
        ({"families": ()}, "families"),
        ({"families": ("colour",)}, "families"),
        ({"families": ("color", "color")}, "families"),
        ({"backgrounds": ("lena",)}, "backgrounds"),
        ({"align": 0}, "align"),
        ({"align": 9}, "align"),  # more than resolution // 8 = 8 px
        ({"resolution": 96, "align": 7}, "align"),  # does not divide 96
        ({"align": 2.0}, "align"),
    ],
)
def test_invalid_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TaskConfig(**kwargs)


@pytest.mark.parametrize("kwargs, name", [({"seed": -1}, "seed"), ({"index": -2}, "index"), ({"index": 1.5}, "index")])
def test_invalid_seed_or_index(kwargs, name):
    args = {"seed": 0, "index": 0, **kwargs}
    with pytest.raises(ValueError, match=name):
        sample_spec(TaskConfig(), args["seed"], args["index"])


def test_invalid_count():
    with pytest.raises(ValueError, match="count"):
        generate_samples(TaskConfig(), 0, -1)


def test_single_family_string_is_accepted():
    assert TaskConfig(families="count").families == ("count",)


# ----------------------------------------------------------------------------- data sources

def test_every_background_is_a_bundled_photo():
    """All backgrounds load offline from the scikit-image wheel and are muted below the palette's chroma."""
    for name in BACKGROUNDS:
        image = photo(name)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert max(image.shape[:2]) <= 384 and min(image.shape[:2]) >= 150
        assert image.std() > 10, f"{name} is flat"
    crop = sample_spec(TaskConfig(), 0, 0).scene.background
    bg = render_background(crop, 64).astype(int)
    assert (bg.max(-1) - bg.min(-1)).max() <= MAX_BACKGROUND_CHROMA
    palette_chroma = min(max(c) - min(c) for c in COLORS.values())
    assert palette_chroma - MAX_BACKGROUND_CHROMA >= 100


def test_palette_colours_are_far_apart():
    names = list(COLORS)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(np.subtract(COLORS[a], COLORS[b])).max() >= 120, (a, b)


@pytest.mark.parametrize("shape", SHAPES)
def test_sprites_fill_their_box_and_differ(shape):
    alpha = sprite(shape, 32)
    assert alpha.shape == (32, 32) and alpha.dtype == np.float32
    assert 0.0 <= alpha.min() and alpha.max() == 1.0
    assert 0.25 < alpha.mean() < 0.8, "shapes have comparable areas, so area alone does not give them away"
    for other in SHAPES:
        if other != shape:
            assert np.abs(alpha - sprite(other, 32)).mean() > 0.08, (shape, other)


# ----------------------------------------------------------------------------- determinism

def _digest(samples) -> str:
    h = hashlib.sha256()
    for s in samples:
        h.update(s.frames.tobytes())
        h.update(f"{s.question}|{s.answer}|{s.family}".encode())
    return h.hexdigest()


def test_same_seed_same_bytes_and_samples_are_independent():
    cfg = TaskConfig(num_frames=6, resolution=48)
    batch = generate_samples(cfg, 11, 8)
    assert _digest(batch) == _digest(generate_samples(cfg, 11, 8))
    # sample i does not depend on which other samples were generated
    alone = generate_sample(cfg, 11, 5)
    assert np.array_equal(alone.frames, batch[5].frames) and alone.question == batch[5].question
    assert generate_samples(cfg, 11, 3, start=5)[0].scene == batch[5].scene
    # another seed gives other clips
    other = generate_samples(cfg, 12, 8)
    assert all(not np.array_equal(a.frames, b.frames) for a, b in zip(batch, other))


def test_same_bytes_in_a_fresh_process_with_another_hash_seed():
    cfg = TaskConfig(num_frames=6, resolution=48)
    code = (
        "import hashlib; from focus_jax.data import TaskConfig, generate_samples;"
        "h = hashlib.sha256();"
        "[h.update(s.frames.tobytes()) or h.update(f'{s.question}|{s.answer}|{s.family}'.encode())"
        " for s in generate_samples(TaskConfig(num_frames=6, resolution=48), 11, 8)];"
        "print(h.hexdigest())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": "", "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == _digest(generate_samples(cfg, 11, 8))


# ----------------------------------------------------------------------------- balance

def test_families_and_answers_are_exactly_balanced():
    cfg = TaskConfig()
    per_family = 60  # a multiple of every family's answer count (4, 5, 6)
    specs = [sample_spec(cfg, 3, i) for i in range(len(FAMILIES) * per_family)]
    families = collections.Counter(s.family for s in specs)
    assert families == {f: per_family for f in FAMILIES}
    for family in FAMILIES:
        answers = [s.answer for s in specs if s.family == family]
        n = len(ANSWERS[family])
        assert collections.Counter(answers) == {a: per_family // n for a in ANSWERS[family]}
        for start in range(0, per_family, n):  # every block of n consecutive samples holds each answer once
            assert sorted(answers[start : start + n]) == sorted(ANSWERS[family])
        assert answers[:n] != answers[n : 2 * n] or n == 1, "blocks are reshuffled, not cycled"


def test_family_subset():
    cfg = TaskConfig(families=("count", "first"))
    assert {sample_spec(cfg, 0, i).family for i in range(10)} == {"count", "first"}


# ----------------------------------------------------------------------------- ground truth

def check_scene_ground_truth(spec, frames=None):
    """The scene description supports the answer, and (given ``frames``) the pixels show the scene."""
    scene, family, answer = spec.scene, spec.family, spec.answer
    res, nf = scene.resolution, scene.num_frames
    objs = scene.objects
    assert spec.question == QUESTION_TEMPLATES[family].format(shape=objs[0].shape, color=objs[0].color)
    assert answer in ANSWERS[family] and answer not in spec.question.rstrip("?").split()
    assert len({o.color for o in objs}) == len(objs) and len({o.shape for o in objs}) == len(objs)

    masks = object_masks(scene)
    assert masks.sum(axis=1).max() <= 1.0 + 1e-6, "objects overlap"
    for i, obj in enumerate(objs):
        full = sprite(obj.shape, obj.size).sum()
        for t in range(nf):
            expected = full if t >= obj.appear else 0.0
            assert masks[t, i].sum() == pytest.approx(expected, rel=1e-5), "object leaves the frame"
        if obj.moves:
            assert (obj.displacement[0] == 0) != (obj.displacement[1] == 0), "motion is along one axis"
            assert np.abs(obj.displacement).max() >= obj.align * max(1, round(0.3 * res / obj.align))

    target, others = objs[0], objs[1:]
    if family == "color":
        assert answer == target.color and spec.question == f"what color is the {target.shape}?"
    elif family == "shape":
        assert answer == target.shape
    elif family == "direction":
        assert answer == target.direction and not any(o.moves for o in others)
        # the centroid really travels that way
        c0 = np.argwhere(masks[0, 0] > 0.5).mean(0)
        c1 = np.argwhere(masks[-1, 0] > 0.5).mean(0)
        step = np.sign(np.rint(c1 - c0)).astype(int)
        assert tuple(step) == DIRECTIONS[answer]
    elif family == "count":
        assert len(objs) == COUNT_WORDS.index(answer) + 1
    elif family == "moving":
        assert [o.color for o in objs if o.moves] == [answer]
    elif family == "first":
        assert answer == target.shape and target.appear == 0
        assert all(o.appear >= max(1, nf // 4) for o in others)
        assert len({o.appear for o in others}) == len(others)
        assert [masks[0, i].sum() > 0 for i in range(len(objs))] == [True] + [False] * len(others)

    if frames is not None:
        assert frames.shape == (nf, res, res, 3) and frames.dtype == np.uint8
        background = render_background(scene.background, res)
        covered = masks.sum(axis=1)
        assert np.array_equal(frames[covered == 0], np.broadcast_to(background, frames.shape)[covered == 0])
        for i, obj in enumerate(objs):
            solid = masks[:, i] == 1.0
            assert solid.any() and np.all(frames[solid] == COLORS[obj.color])


CONFIGS = [
    TaskConfig(),
    TaskConfig(num_frames=16, resolution=96),
    TaskConfig(num_frames=4, resolution=48),
    TaskConfig(align=8),
    TaskConfig(num_frames=6, resolution=96, align=12),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_ground_truth_from_the_scene_and_the_pixels(config):
    for index in range(60):
        spec = sample_spec(config, 5, index)
        check_scene_ground_truth(spec, spec.render())


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    index=st.integers(0, 10**6),
    num_frames=st.integers(4, 24),
    resolution=st.integers(24, 80).map(lambda r: 2 * r),
    align=st.integers(1, 20),
)
def test_ground_truth_property(seed, index, num_frames, resolution, align):
    if resolution % align or resolution // align < 8:
        align = 1
    check_scene_ground_truth(
        sample_spec(TaskConfig(num_frames=num_frames, resolution=resolution, align=align), seed, index)
    )


@pytest.mark.parametrize("config", [TaskConfig(align=8), TaskConfig(num_frames=6, resolution=96, align=12)])
def test_aligned_objects_sit_on_whole_cells(config):
    """With ``align`` every object's box covers whole ``align x align`` cells in every frame
    (what puts each object on whole ViT patches), and objects move in whole cells."""
    a = config.align
    for index in range(60):
        scene = sample_spec(config, 3, index).scene
        for obj in scene.objects:
            assert obj.size % a == 0 and obj.size >= a and obj.align == a
            for t in range(scene.num_frames):
                y, x = obj.position(t, scene.num_frames)
                assert (
                    y % a == 0
                    and x % a == 0
                    and 0 <= y <= config.resolution - obj.size
                    and 0 <= x <= config.resolution - obj.size
                )


def test_align_one_is_free_placement():
    """``align=1`` (the default) places objects to the pixel: sizes and positions that are
    not multiples of 8 occur."""
    sizes = {o.size % 8 for i in range(40) for o in sample_spec(TaskConfig(), 2, i).scene.objects}
    assert sizes - {0}


@pytest.mark.parametrize("config", CONFIGS)
def test_pixel_only_solver_answers_every_question(config):
    """Every answer is determined by the frames alone: a solver that sees only pixels gets 100%."""
    samples = generate_samples(config, 9, 120)
    wrong = [(s.family, s.question, s.answer, solve(s.frames, s.question, s.family)) for s in samples]
    wrong = [w for w in wrong if w[2] != w[3]]
    print(
        f"pixel-only solver: {len(samples) - len(wrong)}/{len(samples)} correct at {config.resolution}px, "
        f"{config.num_frames} frames"
    )
    assert not wrong


def test_question_alone_does_not_give_the_answer():
    """A text-only baseline (most frequent answer per question string, fitted on one seed,
    scored on another) stays at chance: the frames are needed."""
    cfg = TaskConfig()
    prior = collections.defaultdict(collections.Counter)
    for i in range(1800):
        spec = sample_spec(cfg, 0, i)
        prior[spec.question][spec.answer] += 1
    hits = collections.defaultdict(list)
    for i in range(1200):
        spec = sample_spec(cfg, 1, i)
        guess = prior[spec.question].most_common(1)[0][0] if spec.question in prior else None
        hits[spec.family].append(guess == spec.answer)
    for family, h in hits.items():
        chance = 1 / len(ANSWERS[family])
        print(f"{family}: text-only accuracy {np.mean(h):.3f} (chance {chance:.3f})")
        assert np.mean(h) <= chance + 0.1


def test_scene_questions_are_answered_by_the_pixels():
    """Every question ``scene_questions`` asks about a clip (the training data beyond the
    sample's own question) has the answer the pixel-only solver reads off the frames, lies
    in its family's answers, and the sample's own question is among them."""
    asked = collections.Counter()
    for sample in generate_samples(TaskConfig(), 4, 48):
        questions = scene_questions(sample.scene)
        assert (sample.family, sample.question, sample.answer) in questions
        assert len({q for _, q, _ in questions}) == len(questions)
        for family, question, answer in questions:
            assert answer in ANSWERS[family]
            assert solve(sample.frames, question, family) == answer, (family, question, answer)
            asked[family] += 1
    print("questions per family over 48 clips:", dict(asked))
    assert set(asked) == set(FAMILIES)
