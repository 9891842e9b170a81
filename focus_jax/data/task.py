"""The synthetic video question-answering task: six question families over moving shapes.

| family | question | answers |
|---|---|---|
| ``color`` | what color is the {shape}? | ``COLORS`` |
| ``shape`` | what shape is the {color} object? | ``SHAPES`` |
| ``direction`` | which way does the {color} {shape} move? | left, right, up, down |
| ``count`` | how many shapes are there? | one, two, three, four |
| ``moving`` | what color is the moving shape? | ``COLORS`` |
| ``first`` | which shape appears first? | ``SHAPES`` |

Every scene uses distinct colours and distinct shapes, so naming one attribute singles out
one object. Only the ``direction`` target moves in a ``direction`` scene and only the
``moving`` target in a ``moving`` scene (other objects are static there); in a ``first``
scene the target is the only object in frame 0 and the others appear at distinct later
frames (from frame ``max(1, num_frames // 4)`` on). Elsewhere each object is static or
moves in a random direction.

Determinism and balance: sample ``index`` of ``seed`` depends on nothing else. Its family
is ``families[index % len(families)]``; within a family, answers cycle through seeded
random permutations of the answer list, so every run of ``len(answers)`` consecutive
samples of a family holds each answer exactly once.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from focus_jax.data.backgrounds import BACKGROUNDS, sample_crop
from focus_jax.data.scene import COLORS, DIRECTIONS, SHAPES, Scene, SceneObject, render_scene

__all__ = [
    "FAMILIES", "ANSWERS", "QUESTION_TEMPLATES", "TaskConfig", "QASpec", "VideoQASample",
    "sample_spec", "generate_sample", "generate_samples", "scene_questions", "MIN_ALIGN_CELLS",
]

FAMILIES: tuple[str, ...] = ("color", "shape", "direction", "count", "moving", "first")
COUNT_WORDS: tuple[str, ...] = ("one", "two", "three", "four")
#: The possible answers of every family (each a single word).
ANSWERS: dict[str, tuple[str, ...]] = {
    "color": tuple(COLORS),
    "shape": SHAPES,
    "direction": tuple(DIRECTIONS),
    "count": COUNT_WORDS,
    "moving": tuple(COLORS),
    "first": SHAPES,
}
#: Question of every family; ``{color}`` / ``{shape}`` name the target object.
QUESTION_TEMPLATES: dict[str, str] = {
    "color": "what color is the {shape}?",
    "shape": "what shape is the {color} object?",
    "direction": "which way does the {color} {shape} move?",
    "count": "how many shapes are there?",
    "moving": "what color is the moving shape?",
    "first": "which shape appears first?",
}

# Object box side and travel, as fractions of the frame side (rounded to whole ``align``
# cells). With resolution >= 48 boxes are >= 11 px: below ~10 px a star's points vanish
# and it reads as a circle.
_SIZE_RANGE = (0.22, 0.30)
_TRAVEL_RANGE = (0.30, 0.45)
# Chance that a non-target object moves in families where motion is a distractor.
_DISTRACTOR_MOTION = {"color": 0.4, "shape": 0.4, "first": 0.4, "count": 0.3}
#: Fewest ``align`` cells per frame side (``TaskConfig.align``): 4 static objects of 0.22 x
#: the side, each rounded to at least one cell, always fit with one-cell gaps.
MIN_ALIGN_CELLS = 8
_MARGIN = 1  # px between an object and the frame border
_GAP = 2  # px between the swept boxes of two objects
_PLACEMENT_RESTARTS = 200


def _check_int(name: str, value, lo: int, hi: int | None = None) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < lo
        or (hi is not None and value > hi)
    ):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """What clips to generate.

    Attributes:
        num_frames: frames per clip, 4..64 (motion and "appears first" need >= 4).
        resolution: frame side in pixels, even (H.264 needs even sides), 48..512 (smaller
            frames make stars indistinguishable from circles).
        families: question families to draw from (a non-empty subset of ``FAMILIES``).
        backgrounds: photographs to crop backgrounds from (a non-empty subset of
            ``BACKGROUNDS``), e.g. to hold some out for evaluation.
        align: objects' sizes, positions and travel are whole multiples of this many
            pixels, and they move in whole steps of it (1: free placement). Set it to the
            vision tower's patch size to put every object on whole patches: a 2-layer
            SigLIP trained from scratch then reads shapes in a few hundred steps (99 % of
            object tokens after 200 vision-only steps), while objects at arbitrary
            sub-patch offsets leave it at 51 % after 900 (41 % in a model trained 5000
            steps on the full task; see the README). It must divide ``resolution`` into
            at least ``MIN_ALIGN_CELLS`` (8) cells per side.

    Raises:
        ValueError: naming the invalid field.
    """

    num_frames: int = 8
    resolution: int = 64
    families: tuple[str, ...] = FAMILIES
    backgrounds: tuple[str, ...] = BACKGROUNDS
    align: int = 1

    def __post_init__(self):
        _check_int("num_frames", self.num_frames, 4, 64)
        _check_int("resolution", self.resolution, 48, 512)
        if self.resolution % 2:
            raise ValueError(f"resolution must be even (H.264 needs even frame sides), got {self.resolution}")
        _check_int("align", self.align, 1, self.resolution // MIN_ALIGN_CELLS)
        if self.resolution % self.align:
            raise ValueError(f"align ({self.align}) must divide resolution ({self.resolution})")
        for field, allowed in (("families", FAMILIES), ("backgrounds", BACKGROUNDS)):
            value = getattr(self, field)
            if isinstance(value, str):
                value = (value,)
            value = tuple(value)
            unknown = [v for v in value if v not in allowed]
            if not value or unknown or len(set(value)) != len(value):
                raise ValueError(
                    f"{field} must be a non-empty list of distinct names from {', '.join(allowed)}; got {list(value)}"
                )
            object.__setattr__(self, field, value)


@dataclasses.dataclass(frozen=True)
class QASpec:
    """A question about a scene, before rendering: ``family``, ``question``, one-word ``answer``."""

    scene: Scene
    question: str
    answer: str
    family: str

    def render(self) -> np.ndarray:
        """``(F, H, W, 3)`` uint8 frames of the scene."""
        return render_scene(self.scene)


@dataclasses.dataclass(frozen=True, eq=False)
class VideoQASample:
    """One task sample: ``frames`` ``(F, H, W, 3)`` uint8 RGB, ``question``, one-word
    ``answer``, ``family``, and the ``scene`` it was rendered from."""

    frames: np.ndarray
    question: str
    answer: str
    family: str
    scene: Scene


# --------------------------------------------------------------------------- sampling

def _answer(seed: int, index: int, families: tuple[str, ...]) -> tuple[str, str]:
    family = families[index % len(families)]
    answers = ANSWERS[family]
    block, pos = divmod(index // len(families), len(answers))
    perm = np.random.default_rng([seed, FAMILIES.index(family), block, 0xBA1]).permutation(len(answers))
    return family, answers[perm[pos]]


def _pick(rng: np.random.Generator, options, count: int, first: str | None = None) -> list[str]:
    """``count`` distinct options, starting with ``first`` when given."""
    rest = [o for o in options if o != first]
    chosen = [rest[i] for i in rng.permutation(len(rest))[: count - (first is not None)]]
    return ([first] if first is not None else []) + chosen


def _random_direction(rng: np.random.Generator) -> str:
    return tuple(DIRECTIONS)[int(rng.integers(len(DIRECTIONS)))]


def _layout(rng: np.random.Generator, family: str, answer: str, num_frames: int):
    """Objects as ``(shape, color, direction | None, appear)`` (target first) and the question."""
    if family == "count":
        n = COUNT_WORDS.index(answer) + 1
    else:  # a lone object would make colour/shape/moving/first questions trivial
        n = int(rng.integers(1 if family == "direction" else 2, 4))
    colors = _pick(rng, COLORS, n, answer if family in ("color", "moving") else None)
    shapes = _pick(rng, SHAPES, n, answer if family in ("shape", "first") else None)
    p_move = _DISTRACTOR_MOTION.get(family, 0.0)
    directions = [_random_direction(rng) if rng.random() < p_move else None for _ in range(n)]
    appear = [0] * n
    if family == "direction":
        directions[0] = answer
    elif family == "moving":
        directions[0] = _random_direction(rng)
    elif family == "first":
        lo, hi = max(1, num_frames // 4), num_frames - num_frames // 4
        appear[1:] = [int(a) for a in rng.choice(np.arange(lo, hi + 1), size=n - 1, replace=False)]
    question = QUESTION_TEMPLATES[family].format(shape=shapes[0], color=colors[0])
    return list(zip(shapes, colors, directions, appear)), question


def _separated(a, b, gap: int) -> bool:
    (ay0, ax0, ay1, ax1), (by0, bx0, by1, bx1) = a, b
    return ay1 + gap <= by0 or by1 + gap <= ay0 or ax1 + gap <= bx0 or bx1 + gap <= ax0


def _place(rng: np.random.Generator, layout, resolution: int, align: int, keep_motion: bool) -> tuple[SceneObject, ...]:
    """Sizes, start points and travel such that no two objects' swept boxes (the area an
    object covers over the whole clip) come within ``_GAP`` px of each other.

    Works in cells of ``align`` px (``TaskConfig.align``); aligned objects may touch the
    frame border, since a whole-cell margin would waste a cell row on every side. Random
    restarts; crowded layouts (several movers) that keep failing get smaller sizes and
    travel, and in the last quarter of the restarts distractors stop moving (never the
    target when ``keep_motion``: its motion is the answer). The static last resort always
    fits (at most 4 boxes of 0.22 x resolution, at least 8 cells per side).
    """
    cells = resolution // align
    size_lo, size_hi = (max(1, round(f * cells)) for f in _SIZE_RANGE)
    travel_lo, travel_hi = (max(1, round(f * cells)) for f in _TRAVEL_RANGE)
    margin = _MARGIN if align == 1 else 0
    gap = -(-_GAP // align)
    shrink_by = _PLACEMENT_RESTARTS // 2
    for attempt in range(_PLACEMENT_RESTARTS):
        shrink = min(attempt / shrink_by, 1.0)
        top_size = round(size_hi - shrink * (size_hi - size_lo))
        top_travel = round(travel_hi - shrink * (travel_hi - travel_lo))
        if attempt >= 3 * _PLACEMENT_RESTARTS // 4:
            layout = [obj if (i == 0 and keep_motion) else (*obj[:2], None, obj[3]) for i, obj in enumerate(layout)]
        order = sorted(range(len(layout)), key=lambda i: layout[i][2] is None)  # movers first: hardest to fit
        boxes, placed = [], {}
        for i in order:
            shape, color, direction, appear = layout[i]
            size = int(rng.integers(size_lo, top_size + 1))
            dy, dx = DIRECTIONS[direction] if direction else (0, 0)
            travel = int(rng.integers(travel_lo, top_travel + 1))
            dy, dx = dy * travel, dx * travel
            extent_y, extent_x = size + abs(dy), size + abs(dx)
            for _ in range(50):
                top = int(rng.integers(margin, cells - margin - extent_y + 1))
                left = int(rng.integers(margin, cells - margin - extent_x + 1))
                box = (top, left, top + extent_y, left + extent_x)
                if all(_separated(box, other, gap) for other in boxes):
                    break
            else:
                break  # this object does not fit: start the scene over
            boxes.append(box)
            start = (align * (top - min(dy, 0)), align * (left - min(dx, 0)))
            placed[i] = SceneObject(shape, color, align * size, start, (align * dy, align * dx), appear, align)
        else:
            return tuple(placed[i] for i in range(len(layout)))
    raise RuntimeError(f"could not place {len(layout)} objects in a {resolution}px frame")  # pragma: no cover


def sample_spec(config: TaskConfig, seed: int, index: int) -> QASpec:
    """Question, answer, family and scene of sample ``index`` of ``seed`` (no pixels).

    Raises:
        ValueError: ``seed`` or ``index`` is not a non-negative integer.
    """
    _check_int("seed", seed, 0)
    _check_int("index", index, 0)
    family, answer = _answer(int(seed), int(index), config.families)
    rng = np.random.default_rng([int(seed), int(index), 0x5CE])
    layout, question = _layout(rng, family, answer, config.num_frames)
    background = sample_crop(rng, config.backgrounds)
    objects = _place(rng, layout, config.resolution, config.align, keep_motion=family in ("direction", "moving"))
    scene = Scene(config.resolution, config.num_frames, background, objects)
    return QASpec(scene, question, answer, family)


def generate_sample(config: TaskConfig, seed: int, index: int) -> VideoQASample:
    """Sample ``index`` of ``seed``, rendered: same arguments give identical bytes.

    Raises:
        ValueError: ``seed`` or ``index`` is not a non-negative integer.
    """
    spec = sample_spec(config, seed, index)
    return VideoQASample(spec.render(), spec.question, spec.answer, spec.family, spec.scene)


def generate_samples(config: TaskConfig, seed: int, count: int, start: int = 0) -> list[VideoQASample]:
    """Samples ``start .. start + count - 1`` of ``seed``.

    Raises:
        ValueError: ``seed``, ``count`` or ``start`` is not a non-negative integer.
    """
    _check_int("count", count, 0)
    _check_int("start", start, 0)
    return [generate_sample(config, seed, i) for i in range(start, start + count)]


def scene_questions(scene: Scene) -> list[tuple[str, str, str]]:
    """Every question of the task that ``scene`` answers unambiguously, as
    ``(family, question, answer)``, in ``FAMILIES`` order, objects in scene order.

    ``color`` and ``shape`` for every object (colours and shapes are distinct in a scene),
    ``direction`` for every moving object, ``count`` always, ``moving`` when exactly one
    object moves, ``first`` when exactly one object is in frame 0. The question a sample
    was generated with is among them with the same answer. Training asks several of them
    about one rendered clip (one vision pass, several answers).
    """
    objs = scene.objects
    movers = [o for o in objs if o.moves]
    in_first_frame = [o for o in objs if o.appear == 0]
    out = [("color", QUESTION_TEMPLATES["color"].format(shape=o.shape), o.color) for o in objs]
    out += [("shape", QUESTION_TEMPLATES["shape"].format(color=o.color), o.shape) for o in objs]
    out += [
        ("direction", QUESTION_TEMPLATES["direction"].format(color=o.color, shape=o.shape), o.direction) for o in movers
    ]
    out.append(("count", QUESTION_TEMPLATES["count"], COUNT_WORDS[len(objs) - 1]))
    if len(movers) == 1:
        out.append(("moving", QUESTION_TEMPLATES["moving"], movers[0].color))
    if len(in_first_frame) == 1:
        out.append(("first", QUESTION_TEMPLATES["first"], in_first_frame[0].shape))
    return out
