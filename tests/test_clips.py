"""Moving-MNIST clips: motion against a closed form, labels, masks, determinism, real digits.

The reference for the motion is independent of the generator's step-by-step reflection: a point
bouncing between walls at 0 and R moves along the "unfolded" line p0 + v t, folded back with the
triangle wave  s -> s mod 2R, then 2R - that if it exceeds R.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rlrobust.data import (
    DIRECTIONS,
    ImageData,
    clip_masks,
    clip_trajectory,
    load_dataset,
    make_moving_mnist,
)
from rlrobust.data.moving_mnist import DIGIT, SPEEDS, UNIT_STEPS, moving_mnist_stats
from rlrobust.errors import DataError


def folded(start: np.ndarray, velocity: np.ndarray, t: int, room: int) -> np.ndarray:
    """Closed-form position of a point reflecting between 0 and ``room`` (triangle wave)."""
    s = np.mod(start + velocity * t, 2 * room)
    return np.where(s > room, 2 * room - s, s)


def toy_digits(n: int = 7) -> ImageData:
    """n distinct 28 x 28 'digits': a filled rectangle whose size and value encode the index."""
    images = torch.zeros(n, 1, DIGIT, DIGIT, dtype=torch.uint8)
    for i in range(n):
        images[i, 0, 3 : 10 + 2 * i, 5 : 12 + i] = 40 + 30 * i
    return ImageData(images, torch.arange(n) % 2, 2, "toy-digits", (0.1,), (0.3,))


@pytest.mark.parametrize("size", [64, 48])
def test_motion_follows_the_closed_form_and_bounces(size: int) -> None:
    room = size - DIGIT
    bounced = 0
    for index in range(200):
        path = clip_trajectory(index, "train", 1000, frames=16, size=size, seed=3)
        velocity = np.array(UNIT_STEPS[path.direction]) * path.speed
        assert path.speed in SPEEDS
        for t in range(16):
            np.testing.assert_array_equal(
                path.corners[t], folded(path.corners[0], velocity, t, room)
            )
        assert path.corners.min() >= 0 and path.corners.max() <= room
        # The label is the direction of the first step, which never touches a wall.
        np.testing.assert_array_equal(path.corners[1] - path.corners[0], velocity)
        steps = np.diff(path.corners, axis=0)
        bounced += bool((np.sign(steps) != np.sign(velocity)).any())
    assert bounced > 50, "most 16-frame clips should hit a wall at least once"


def test_a_hand_checked_bounce() -> None:
    """A clip moving right: +speed per frame until it would pass the wall at 64 - 28 = 36, then
    reflected (x -> 72 - x) and moving left at the same speed."""
    for index in range(500):
        path = clip_trajectory(index, "test", 10, frames=10, size=64, seed=0)
        x = path.corners[:, 0]
        if path.direction == 0 and np.any(np.diff(x) < 0):
            break
    else:  # pragma: no cover - the generator would be broken
        pytest.fail("no right-moving clip bounced in 500 clips")
    s = path.speed
    turn = int(np.argmax(np.diff(x) < 0))  # x[turn + 1] < x[turn]: the bounce step
    assert all(x[t + 1] - x[t] == s for t in range(turn))
    assert x[turn] + s > 36 and x[turn + 1] == 72 - (x[turn] + s)
    if turn + 2 < 10:
        assert x[turn + 2] == x[turn + 1] - s
    assert (path.corners[:, 1] == path.corners[0, 1]).all()  # "right" never moves vertically


def test_clips_are_deterministic_per_index() -> None:
    digits = toy_digits()
    five = make_moving_mnist(digits, "train", num_clips=5, seed=1)
    twenty = make_moving_mnist(digits, "train", num_clips=20, seed=1)
    assert torch.equal(five.images, twenty.images[:5]) and torch.equal(
        five.labels, twenty.labels[:5]
    )
    again = make_moving_mnist(digits, "train", num_clips=5, seed=1)
    assert torch.equal(five.images, again.images)
    other_seed = make_moving_mnist(digits, "train", num_clips=5, seed=2)
    assert not torch.equal(five.images, other_seed.images)
    test_split = make_moving_mnist(digits, "test", num_clips=5, seed=1)
    assert not torch.equal(five.images, test_split.images)  # splits draw different clips


def test_frames_masks_and_labels_match_the_trajectory() -> None:
    digits = toy_digits()
    data = make_moving_mnist(digits, "train", num_clips=12, frames=6, size=48, seed=0)
    assert data.images.shape == (12, 1, 6, 48, 48) and data.layout == "video"
    assert data.masks is not None and data.masks.dtype == torch.bool
    assert data.class_names == DIRECTIONS and data.num_classes == 8
    for i in range(12):
        path = clip_trajectory(i, "train", len(digits), frames=6, size=48, seed=0)
        digit = digits.images[path.digit_index, 0]
        assert int(data.labels[i]) == path.direction
        for t, (x, y) in enumerate(path.corners):
            frame = data.images[i, 0, t]
            expected = torch.zeros(48, 48, dtype=torch.uint8)
            expected[y : y + DIGIT, x : x + DIGIT] = digit
            assert torch.equal(frame, expected)
            mask = torch.zeros(48, 48, dtype=torch.bool)
            mask[y : y + DIGIT, x : x + DIGIT] = digit > 0
            assert torch.equal(data.masks[i, 0, t], mask)
    assert torch.equal(clip_masks(data), data.masks)


def test_masks_follow_subset_take_and_to() -> None:
    data = make_moving_mnist(toy_digits(), "test", num_clips=10, frames=3, size=40)
    sub = data.subset([7, 2])
    assert torch.equal(sub.masks, data.masks[[7, 2]]) and torch.equal(
        sub.images, data.images[[7, 2]]
    )
    taken = data.take(4, seed=0)
    assert torch.equal(taken.masks, taken.images > 0)
    assert data.to("cpu").masks is not None
    with pytest.raises(DataError, match="masks must have the images' shape"):
        ImageData(data.images, data.labels, 8, "x", (0.1,), (0.3,), masks=data.masks[:, :, :2])
    with pytest.raises(DataError, match="torch.bool"):
        ImageData(data.images, data.labels, 8, "x", (0.1,), (0.3,), masks=data.images)
    plain = ImageData(data.images, data.labels, 8, "x", (0.1,), (0.3,))
    with pytest.raises(DataError, match="no ground-truth masks"):
        clip_masks(plain)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"frames": 1}, "frames"),
        ({"size": 30}, "size"),
        ({"num_clips": 0}, "num_clips"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict, match: str) -> None:
    options = {"num_clips": 2, **kwargs}
    with pytest.raises(DataError, match=match):
        make_moving_mnist(toy_digits(), "train", **options)


def test_analytic_statistics() -> None:
    mean, std = moving_mnist_stats(28)  # a 28 x 28 canvas is just MNIST
    assert mean == pytest.approx(0.1307) and std == pytest.approx(0.3081)
    mean64, _ = moving_mnist_stats(64)
    assert mean64 == pytest.approx(0.1307 * 784 / 4096)


@pytest.mark.realdata
def test_real_moving_mnist_from_both_mnist_splits(shared_data_dir: Path) -> None:
    train = load_dataset("moving-mnist", "train", data_dir=shared_data_dir, num_clips=300)
    test = load_dataset("moving-mnist", "test", data_dir=shared_data_dir, num_clips=40, frames=16)
    assert train.shape == (1, 10, 64, 64) and test.shape == (1, 16, 64, 64)
    assert train.mean == test.mean and train.std == test.std
    # The exact expectations match the sample (300 clips, 3000 frames).
    x = train.images.double() / 255
    assert x.mean().item() == pytest.approx(train.mean[0], rel=0.05)
    assert x.std().item() == pytest.approx(train.std[0], rel=0.05)
    assert torch.equal(train.masks, train.images > 0)
    assert set(train.labels.tolist()) == set(range(8))
    mnist_test = load_dataset("mnist", "test", data_dir=shared_data_dir)
    path = clip_trajectory(0, "test", len(mnist_test), frames=16, seed=0)
    x0, y0 = path.corners[0]
    digit = mnist_test.images[path.digit_index, 0]
    assert torch.equal(test.images[0, 0, 0, y0 : y0 + DIGIT, x0 : x0 + DIGIT], digit)


def test_unknown_split() -> None:
    with pytest.raises(DataError, match="train, test"):
        clip_trajectory(0, "val", 10)


def test_wrap_motion_is_a_torus_and_draws_across_the_edges() -> None:
    digits = toy_digits()
    data = make_moving_mnist(digits, "train", num_clips=30, frames=8, size=40, motion="wrap")
    assert data.name == "moving-mnist-wrap"
    crossed = 0
    for i in range(30):
        path = clip_trajectory(i, "train", len(digits), frames=8, size=40, motion="wrap")
        velocity = np.array(UNIT_STEPS[path.direction]) * path.speed
        assert int(data.labels[i]) == path.direction
        digit = digits.images[path.digit_index, 0]
        for t, (x, y) in enumerate(path.corners):
            np.testing.assert_array_equal([x, y], np.mod(path.corners[0] + velocity * t, 40))
            # Reference drawing: pixel (r, c) of the digit lands at ((y + r) % 40, (x + c) % 40).
            expected = torch.zeros(40, 40, dtype=torch.uint8)
            rows = (torch.arange(DIGIT) + int(y)) % 40
            cols = (torch.arange(DIGIT) + int(x)) % 40
            expected[rows[:, None], cols[None, :]] = digit
            assert torch.equal(data.images[i, 0, t], expected)
            crossed += bool(x > 40 - DIGIT or y > 40 - DIGIT)
        assert torch.equal(data.masks[i], data.images[i] > 0)
    assert crossed > 0, "some frames must show a digit split across the edges"
    with pytest.raises(DataError, match="bounce, wrap"):
        make_moving_mnist(digits, "train", num_clips=2, motion="spiral")


def test_wrap_positions_are_uniform_whatever_the_direction() -> None:
    """The leak-free claim: on the torus the position at any frame does not depend on the label.
    Exactly: for a fixed velocity, (p0 + v t) mod size is uniform when p0 is, so the mean
    corner per direction stays near (size - 1) / 2 at every frame, unlike with bouncing."""
    size, n = 40, 3000
    paths = [clip_trajectory(i, "train", 10, size=size, motion="wrap") for i in range(n)]
    wrap = np.array([p.corners for p in paths])
    labels = np.array([p.direction for p in paths])
    right = wrap[labels == 0]  # ~375 clips moving right
    # Uniform on 0..39: mean 19.5, standard error about 11.5 / sqrt(375) = 0.6.
    assert np.abs(right[:, :, 0].mean(axis=0) - 19.5).max() < 2.5
    paths = [clip_trajectory(i, "train", 10, size=size) for i in range(n)]
    bounce = np.array([p.corners for p in paths])
    bounce_labels = np.array([p.direction for p in paths])
    # With bouncing, a digit that set off to the right has drifted right a few frames later.
    room = size - DIGIT
    drift = bounce[bounce_labels == 0][:, 3, 0].mean() - room / 2
    assert drift > 1.0


@pytest.mark.realdata
def test_docs_data_page_example_runs(shared_data_dir: Path, monkeypatch) -> None:
    """docs/data.md's Python example runs as written (with the shared MNIST files)."""
    import re

    monkeypatch.setenv("RLROBUST_DATA", str(shared_data_dir))
    page = Path(__file__).resolve().parents[1] / "docs" / "data.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "docs/data.md has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], str(page), "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["test"].shape == (1, 16, 64, 64)


@pytest.mark.cli
@pytest.mark.realdata
def test_train_command_on_clips(tmp_path: Path, shared_data_dir: Path) -> None:
    """rlrobust train end to end on moving-mnist with cnn3d, options through --data.options."""
    from rlrobust.cli import main

    out = tmp_path / "run"
    argv = ["train", "--data.name", "moving-mnist", "--data.data_dir", str(shared_data_dir),
            "--data.options", '{"num_clips": 16, "frames": 3, "size": 40}', "--model.name",
            "cnn3d", "--model.options", '{"widths": [4, 4, 4]}', "--train.epochs", "1",
            "--train.device", "cpu", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert (out / "model.safetensors").is_file()
