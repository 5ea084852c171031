"""Contract tests for the model zoo, parametrised over every MODELS entry.

Contract (DESIGN.md): [0, 1] inputs shaped (N, C, H, W) for image models, (N, C, L) for signal
models and (N, C, T, H, W) for video models (``model_input_rank``); a Normalize module with
buffers is the first layer; the output is (N, num_classes) logits; eval() is deterministic.
"""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
from torch import nn

from rlrobust.errors import ConfigError, RLRobustError, UnknownNameError
from rlrobust.models import (
    VGG,
    CNN1d,
    CNN3d,
    GuptaCNN,
    Normalize,
    WideResNet,
    ZouCNN6,
    build_model,
    count_parameters,
    list_models,
    model_input_rank,
)
from rlrobust.registry import MODELS

# (in_channels, image_size, num_classes) per input rank. Images: MNIST-like and CIFAR-100-like;
# signals: GunPoint-like (length 150) and a short 3-channel series; video: short clips
# (FRAMES frames of size x size), moving-mnist-like with 8 classes and an RGB one.
SHAPES = {
    2: [(1, 28, 10), (3, 32, 100)],
    1: [(1, 150, 2), (3, 24, 10)],
    3: [(1, 16, 8), (3, 12, 5)],
}
FRAMES = 4

# Full-size WRNs cost seconds per forward on a CPU: the contract tests use WRN-10-1 through the
# class, and test_wide_resnet_registry_entries runs each registered WRN once.
STANDINS = {
    "wideresnet34_10": lambda **kw: WideResNet(**kw, depth=10, widen_factor=1),
    "wideresnet28_10": lambda **kw: WideResNet(**kw, depth=10, widen_factor=1),
}


def make(name: str, in_channels: int, image_size: int, num_classes: int, **kw) -> nn.Module:
    factory = STANDINS.get(name, MODELS.get(name))
    return factory(
        num_classes=num_classes, in_channels=in_channels, image_size=image_size, **kw
    ).eval()


def sample_dims(rank: int, image_size: int) -> tuple[int, ...]:
    """One sample's dimensions after the channel axis, for a model of input ``rank``."""
    return {1: (image_size,), 2: (image_size,) * 2, 3: (FRAMES, image_size, image_size)}[rank]


def images(
    in_channels: int, image_size: int, n: int = 2, seed: int = 0, rank: int = 2
) -> torch.Tensor:
    """[0, 1] inputs: (n, C, s, s) images, (n, C, s) signals or (n, C, FRAMES, s, s) clips."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, in_channels, *sample_dims(rank, image_size), generator=gen)


def inputs_for(name: str, in_channels: int, image_size: int, n: int = 2) -> torch.Tensor:
    return images(in_channels, image_size, n=n, rank=model_input_rank(name))


def per_channel(c: int, values: tuple[float, float, float]) -> list[float]:
    return list(values[:c])


CASES = [(name, *shape) for name in list_models() for shape in SHAPES[model_input_rank(name)]]
IDS = [
    f"{n}-{c}x{'x'.join(map(str, sample_dims(model_input_rank(n), s)))}-{k}" for n, c, s, k in CASES
]


# --------------------------------------------------------------------------- registry contract


def test_registry_lists_the_zoo():
    expected = {
        "lenet5",
        "gupta_cnn",
        "vgg13",
        "resnet18",
        "preact_resnet18",
        "wideresnet34_10",
        "wideresnet28_10",
        "zou_cnn6",
        "mlp",
    }
    assert expected <= set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_factory_signature_is_keyword_friendly(name):
    params = inspect.signature(MODELS.get(name)).parameters
    for arg in ("num_classes", "in_channels", "image_size", "mean", "std"):
        assert arg in params, f"{name} factory lacks {arg}"
        assert params[arg].kind in (params[arg].KEYWORD_ONLY, params[arg].POSITIONAL_OR_KEYWORD)


@pytest.mark.parametrize(("name", "c", "s", "k"), CASES, ids=IDS)
def test_output_is_logits(name, c, s, k):
    torch.manual_seed(0)
    model = make(name, c, s, k)
    with torch.no_grad():
        out = model(inputs_for(name, c, s))
    assert out.shape == (2, k)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # Logits, not probabilities: rows do not form a distribution.
    is_prob = (out >= 0).all() and torch.allclose(out.sum(1), torch.ones(2), atol=1e-3)
    assert not is_prob


@pytest.mark.parametrize(("name", "c", "s", "k"), CASES, ids=IDS)
def test_eval_forward_is_deterministic(name, c, s, k):
    torch.manual_seed(0)
    model = make(name, c, s, k, mean=per_channel(c, (0.5, 0.4, 0.3)))
    x = inputs_for(name, c, s)
    with torch.no_grad():
        first, second = model(x), model(x)
    assert torch.equal(first, second)
    assert not model.training


@pytest.mark.parametrize(("name", "c", "s", "k"), CASES, ids=IDS)
def test_normalize_is_first_and_holds_buffers(name, c, s, k):
    mean, std = per_channel(c, (0.5, 0.4, 0.3)), per_channel(c, (0.2, 0.25, 0.3))
    model = make(name, c, s, k, mean=mean, std=std)
    assert isinstance(next(model.children()), Normalize)

    # The first module *executed* must be Normalize, not merely the first registered.
    order: list[nn.Module] = []
    hooks = [m.register_forward_pre_hook(lambda m, _: order.append(m)) for m in model.modules()]
    with torch.no_grad():
        model(inputs_for(name, c, s))
    for h in hooks:
        h.remove()
    assert order[0] is model, "the root runs first"
    assert isinstance(order[1], Normalize)

    norm_names = [n for n, m in model.named_modules() if isinstance(m, Normalize)]
    assert len(norm_names) == 1
    prefix = norm_names[0]
    assert not [n for n, _ in model.named_parameters() if n.startswith(prefix + ".")]
    buffers = dict(model.named_buffers())
    assert torch.equal(buffers[f"{prefix}.mean"].flatten(), torch.tensor(mean))
    assert torch.equal(buffers[f"{prefix}.std"].flatten(), torch.tensor(std))
    assert f"{prefix}.mean" in model.state_dict()


@pytest.mark.parametrize(("name", "c", "s", "k"), CASES, ids=IDS)
def test_normalization_is_applied_inside(name, c, s, k):
    """Model(mean m, std s)(x) == same weights with identity Normalize applied to (x - m) / s."""
    mean, std = per_channel(c, (0.5, 0.4, 0.3)), per_channel(c, (0.2, 0.25, 0.3))
    torch.manual_seed(0)
    model = make(name, c, s, k, mean=mean, std=std)
    plain = copy.deepcopy(model)
    norm = next(plain.children())
    norm.mean.fill_(0.0)
    norm.std.fill_(1.0)
    x = inputs_for(name, c, s)
    per_channel_view = (1, c) + (1,) * (x.dim() - 2)
    m = torch.tensor(mean).view(per_channel_view)
    sd = torch.tensor(std).view(per_channel_view)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain((x - m) / sd), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "c", "s", "k"), CASES, ids=IDS)
def test_gradient_reaches_the_input(name, c, s, k):
    torch.manual_seed(0)
    model = make(name, c, s, k)
    x = inputs_for(name, c, s).requires_grad_(True)
    # A random weighting of the logits: a plain sum is blind to gupta_cnn's LayerNorm output.
    weights = torch.randn(2, k, generator=torch.Generator().manual_seed(1))
    (model(x) * weights).sum().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize(("name", "c", "s", "k"), CASES, ids=IDS)
def test_state_dict_round_trip(name, c, s, k):
    torch.manual_seed(0)
    source = make(name, c, s, k, mean=per_channel(c, (0.5, 0.4, 0.3)))
    torch.manual_seed(1)
    target = make(name, c, s, k)
    x = inputs_for(name, c, s)
    with torch.no_grad():
        assert not torch.equal(source(x), target(x))
        target.load_state_dict(source.state_dict())
        assert torch.equal(source(x), target(x))
    assert torch.equal(next(target.children()).mean, next(source.children()).mean)


@pytest.mark.parametrize("name", list_models())
def test_small_images_work_or_fail_clearly(name):
    try:
        model = make(name, 3, 8, 10)
    except ConfigError as err:
        assert "image_size" in str(err)
        return
    with torch.no_grad():
        assert model(inputs_for(name, 3, 8)).shape == (2, 10)


@pytest.mark.parametrize("name", [n for n in list_models() if n.startswith("wideresnet")])
def test_wide_resnet_registry_entries(name):
    """One forward of each full-size registered WRN, and its parameter count by hand."""
    depth, widen = (int(v) for v in name.removeprefix("wideresnet").split("_"))
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_channels=3, image_size=32).eval()
    with torch.no_grad():
        out = model(images(3, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()

    def conv(c_in: int, c_out: int, k: int = 3) -> int:
        return c_in * c_out * k * k

    n, widths = (depth - 4) // 6, [16, 16 * widen, 32 * widen, 64 * widen]
    total = conv(3, 16)
    for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
        total += 2 * c_in + conv(c_in, c_out) + 2 * c_out + conv(c_out, c_out)
        total += conv(c_in, c_out, 1) if c_in != c_out else 0
        total += (n - 1) * (4 * c_out + 2 * conv(c_out, c_out))
    total += 2 * widths[-1] + widths[-1] * 10 + 10
    assert count_parameters(model) == total
    if (depth, widen) == (34, 10):
        assert total == 46_160_474  # the 46.2M quoted for the Madry / TRADES model


# --------------------------------------------------------------------------- Normalize


def test_normalize_is_exactly_x_minus_mean_over_std():
    mean, std = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
    x = images(3, 5, n=4)
    expected = torch.empty_like(x)
    for ch in range(3):
        expected[:, ch] = (x[:, ch] - mean[ch]) / std[ch]
    norm = Normalize(mean, std)
    assert norm.mean.shape == (1, 3, 1, 1) and norm.std.shape == (1, 3, 1, 1)
    assert torch.equal(norm(x), expected)
    assert list(norm.parameters()) == []


def test_normalize_handles_signals_and_video():
    norm = Normalize([1.0, 2.0], [2.0, 4.0])
    signal = torch.full((3, 2, 7), 3.0)
    assert torch.equal(norm(signal)[:, 0], torch.full((3, 7), 1.0))
    assert torch.equal(norm(signal)[:, 1], torch.full((3, 7), 0.25))
    assert norm(torch.zeros(1, 2, 3, 4, 4)).shape == (1, 2, 3, 4, 4)


@pytest.mark.parametrize(
    ("mean", "std"),
    [
        ([0.5], [0.0]),
        ([0.5], [-0.1]),
        ([0.5], [float("nan")]),
        ([0.5, 0.5], [0.2]),
        ([], []),
        ([float("inf")], [1.0]),
    ],
)
def test_normalize_rejects_bad_statistics(mean, std):
    with pytest.raises(RLRobustError, match="std|mean"):
        Normalize(mean, std)


def test_normalize_rejects_wrong_channel_count():
    with pytest.raises(RLRobustError, match="channel"):
        Normalize([0.5], [0.5])(torch.zeros(1, 3, 4, 4))


# --------------------------------------------------------------------------- build_model


def test_build_model_defaults_to_identity_normalization():
    model = build_model("mlp", num_classes=10, in_channels=3, image_size=8)
    norm = next(model.children())
    assert torch.equal(norm.mean.flatten(), torch.zeros(3))
    assert torch.equal(norm.std.flatten(), torch.ones(3))


def test_build_model_errors_name_the_fix():
    with pytest.raises(UnknownNameError, match="lenet5"):
        build_model("lenet6", num_classes=10, in_channels=1, image_size=28)
    with pytest.raises(ConfigError, match="num_classes"):
        build_model("mlp", num_classes=1, in_channels=1, image_size=28)
    with pytest.raises(ConfigError, match="in_channels=3"):
        build_model("mlp", num_classes=10, in_channels=3, image_size=28, mean=[0.5], std=[0.5])
    with pytest.raises(ConfigError, match=">= 12"):
        build_model("lenet5", num_classes=10, in_channels=1, image_size=11)
    with pytest.raises(ConfigError, match="6n \\+ 4"):
        WideResNet(num_classes=10, in_channels=3, image_size=32, depth=12, widen_factor=1)


def test_count_parameters_skips_frozen_and_buffers():
    model = build_model("mlp", num_classes=10, in_channels=1, image_size=4, mean=[0.5], std=[1.0])
    total = (16 * 256 + 256) + (256 * 128 + 128) + (128 * 10 + 10)
    assert count_parameters(model) == total
    model.net[-1].weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == total - 128 * 10


# --------------------------------------------------------------------------- the papers' models


def test_lenet5_has_the_classic_parameter_count():
    model = build_model("lenet5", num_classes=10, in_channels=1, image_size=28)
    conv1 = 1 * 6 * 5 * 5 + 6  # 28x28 padded by 2 -> 28x28 -> pool 14x14
    conv2 = 6 * 16 * 5 * 5 + 16  # -> 10x10 -> pool 5x5
    fc1 = 16 * 5 * 5 * 120 + 120
    fc2 = 120 * 84 + 84
    fc3 = 84 * 10 + 10
    assert conv1 + conv2 + fc1 + fc2 + fc3 == 61_706
    assert count_parameters(model) == 61_706


def test_gupta_cnn_ends_with_layernorm_over_logits():
    torch.manual_seed(0)
    model = build_model("gupta_cnn", num_classes=10, in_channels=3, image_size=32).eval()
    last = list(model.modules())[-1]
    assert isinstance(last, nn.LayerNorm) and last.normalized_shape == (10,)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    last.register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
    with torch.no_grad():
        out = model(images(3, 32, n=4))
    logits, normed = seen[0]
    assert out is normed, "the LayerNorm output is the model output"
    # At initialisation (gain 1, bias 0) each row is standardised, eps = 1e-5 as in LayerNorm.
    centred = logits - logits.mean(1, keepdim=True)
    expected = centred / torch.sqrt(centred.pow(2).mean(1, keepdim=True) + 1e-5)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.mean(1), torch.zeros(4), atol=1e-5, rtol=0)


def test_gupta_cnn_options():
    model = GuptaCNN(num_classes=10, in_channels=3, image_size=32, hidden=256, dropout=0.5)
    assert [m.out_features for m in model.classifier if isinstance(m, nn.Linear)] == [256, 10]
    convs = [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)]
    assert convs == [32, 32, 64, 64, 128, 128]
    x = images(3, 32)
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x)), "dropout is active in train()"
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    plain = GuptaCNN(num_classes=10, in_channels=3, image_size=32)
    assert not any(isinstance(m, nn.Dropout) for m in plain.modules())
    with pytest.raises(ConfigError, match="dropout"):
        GuptaCNN(num_classes=10, in_channels=3, image_size=32, dropout=1.0)


def test_vgg13_layout_and_pool_adaptation():
    model = build_model("vgg13", num_classes=10, in_channels=3, image_size=32)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [64, 64, 128, 128, 256, 256, 512, 512, 512, 512]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 10
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 5
    c_in, expected = 3, 0
    for conv in convs:  # conv weights + bias + BatchNorm gain and shift
        expected += c_in * conv.out_channels * 9 + 3 * conv.out_channels
        c_in = conv.out_channels
    assert count_parameters(model) == expected + 512 * 10 + 10 == 9_416_010
    # 8 -> 4 -> 2 -> 1: the last two pools are skipped, the classifier still sees 512 features.
    small = VGG(num_classes=10, in_channels=3, image_size=8)
    assert sum(isinstance(m, nn.MaxPool2d) for m in small.modules()) == 3
    assert small.classifier.in_features == 512
    # 28 -> 14 -> 7 -> 3 -> 1, and the fifth pool is skipped.
    mnist = VGG(num_classes=10, in_channels=1, image_size=28)
    assert sum(isinstance(m, nn.MaxPool2d) for m in mnist.modules()) == 4


def test_resnet18_matches_the_published_size():
    model = build_model("resnet18", num_classes=10, in_channels=3, image_size=32)
    assert count_parameters(model) == 11_173_962  # CIFAR ResNet-18, 10 classes
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    stem = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)


def test_preact_resnet18_differs_from_resnet18_only_in_batchnorm():
    """Same convs and fc; BN moves before the convs (7,808 BN parameters instead of 9,600)."""
    pre = build_model("preact_resnet18", num_classes=10, in_channels=3, image_size=32)
    res = build_model("resnet18", num_classes=10, in_channels=3, image_size=32)

    def count(model: nn.Module, kind: type) -> int:
        modules = [m for m in model.modules() if isinstance(m, kind)]
        return sum(p.numel() for m in modules for p in m.parameters())

    assert count(pre, nn.Conv2d) == count(res, nn.Conv2d)
    assert count(pre, nn.BatchNorm2d) == 7_808 and count(res, nn.BatchNorm2d) == 9_600
    assert count_parameters(pre) == 11_173_962 - 9_600 + 7_808


def test_zou_cnn6_has_four_convs_and_two_fcs():
    model = ZouCNN6(num_classes=10, in_channels=3, image_size=32)
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] == [
        64,
        64,
        128,
        128,
    ]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(128 * 8 * 8, 256), (256, 10)]


# --------------------------------------------------------------------------- input shapes


def test_input_ranks_of_the_zoo():
    assert model_input_rank("cnn1d") == 1 and model_input_rank("cnn3d") == 3
    assert {model_input_rank(n) for n in list_models() if n not in ("cnn1d", "cnn3d")} == {2}


@pytest.mark.parametrize("name", [n for n in list_models() if not n.startswith("wideresnet")])
def test_input_shape_builds_the_same_model_as_the_older_form(name):
    rank = model_input_rank(name)
    c, s, k = SHAPES[rank][0]
    shape = (c, *sample_dims(rank, s))
    torch.manual_seed(0)
    old = make(name, c, s, k)
    torch.manual_seed(0)
    new = build_model(name, num_classes=k, input_shape=shape).eval()
    x = images(c, s, rank=rank)
    with torch.no_grad():
        assert torch.equal(old(x), new(x))
    # A shape of the wrong rank is refused with the kind of input the model takes.
    wrong = (c, 8, 8) if rank != 2 else (c, 8)
    with pytest.raises(ConfigError, match="takes (1-D signals|images|video clips)"):
        build_model(name, num_classes=k, input_shape=wrong)


def test_input_shape_errors_name_the_fix():
    with pytest.raises(ConfigError, match="square"):
        build_model("lenet5", num_classes=10, input_shape=(1, 28, 32))
    with pytest.raises(ConfigError, match="square"):
        build_model("cnn3d", num_classes=8, input_shape=(1, 10, 64, 48))
    with pytest.raises(ConfigError, match="in_channels=3"):
        build_model("cnn1d", num_classes=2, in_channels=3, input_shape=(1, 150))
    with pytest.raises(ConfigError, match="input_shape"):
        MODELS.get("cnn1d")(num_classes=2)
    with pytest.raises(ConfigError, match="cnn1d takes 1-D signals"):
        build_model("cnn1d", num_classes=2, input_shape=(1, 150))(torch.rand(2, 1, 8, 8))
    with pytest.raises(ConfigError, match="cnn3d takes video"):
        build_model("cnn3d", num_classes=2, input_shape=(1, 4, 16, 16))(torch.rand(2, 1, 16, 16))


def test_cnn1d_is_the_wang_fcn_and_takes_any_length():
    model = build_model("cnn1d", num_classes=5, input_shape=(1, 140)).eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert [(m.out_channels, m.kernel_size[0]) for m in convs] == [(128, 8), (256, 5), (128, 3)]
    bn = 2 * (128 + 256 + 128)
    expected = (1 * 128 * 8 + 128) + (128 * 256 * 5 + 256) + (256 * 128 * 3 + 128) + bn
    assert count_parameters(model) == expected + 128 * 5 + 5
    # "same" padding keeps the length (even kernel 8 included); global pooling takes any length.
    seen = []
    convs[0].register_forward_hook(lambda m, i, o: seen.append(o.shape[-1]))
    with torch.no_grad():
        for length in (24, 140, 1460):
            assert model(torch.rand(2, 1, length)).shape == (2, 5)
    assert seen == [24, 140, 1460]
    small = CNN1d(num_classes=3, in_channels=2, image_size=50, widths=(8, 8), kernels=(3, 3))
    assert small(torch.rand(4, 2, 50)).shape == (4, 3)
    with pytest.raises(ConfigError, match="same non-zero length"):
        CNN1d(num_classes=3, in_channels=1, image_size=50, widths=(8,), kernels=(3, 3))


def test_cnn3d_layout_and_use_of_time():
    model = build_model("cnn3d", num_classes=8, input_shape=(1, 10, 64, 64)).eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv3d)]
    assert [m.kernel_size for m in convs] == [(3, 5, 5), (3, 3, 3), (3, 3, 3)]
    expected = (75 * 16 + 16) + (16 * 32 * 27 + 32) + (32 * 64 * 27 + 64) + 2 * (16 + 32 + 64)
    # The head sees 4 time bins of 64 features: when, not only what, is kept.
    assert count_parameters(model) == expected + 64 * 4 * 8 + 8 == 72_712
    gen = torch.Generator().manual_seed(0)
    clip = torch.rand(2, 1, 10, 64, 64, generator=gen)
    with torch.no_grad():
        out = model(clip)
        # Time matters: the same frames in reverse order give other logits.
        assert not torch.allclose(out, model(clip.flip(2)))
        assert model(torch.rand(2, 1, 16, 32, 32)).shape == (2, 8)  # any length and frame size
    assert isinstance(CNN3d(num_classes=4, in_channels=3, image_size=8, frames=2), nn.Module)
