"""Issue 6 components on their own: cell segmentation and crops, tiles, attention head, Lovász hinge,
center loss, single-label samplers, MIL pooling. Everything tiny (CPU, a few seconds)."""

from __future__ import annotations

import itertools
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
torch = pytest.importorskip("torch", reason="needs the [train] extra")  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from base_models import crop_cache as CC  # noqa: E402
from base_models import heads as H  # noqa: E402
from base_models import losses as LX  # noqa: E402
from base_models import mil as M  # noqa: E402
from base_models import samplers as SM  # noqa: E402
from base_models import segment as C  # noqa: E402
from base_models import tiles as T  # noqa: E402
from base_models.losses import build_loss  # noqa: E402
from base_models.models import build_model  # noqa: E402
from base_models.registry import HEADS, LOSSES, SAMPLERS  # noqa: E402

TINY = "test_resnet"


# --------------------------------------------------------------------------- synthetic cells
def draw_cells(size: int = 128, seed: int = 0, n_single: int = 6, n_pairs: int = 2):
    """N textured elliptical nuclei (some in touching pairs) in blue, cytoplasm glow in red/yellow.

    Returns
    -------
    image : ndarray (4, size, size) uint8
    centres : ndarray (n, 2) true nucleus centres
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    blue = np.zeros((size, size))
    cyto = np.zeros((size, size))
    placed: list[tuple[np.ndarray, float]] = []

    def free(c, r):
        inside = r + 4 < c[0] < size - r - 4 and r + 4 < c[1] < size - r - 4
        return inside and all(np.hypot(*(c - p)) > r + pr + 14 for p, pr in placed)

    while len(placed) < n_single + 2 * n_pairs:
        pair = len(placed) >= n_single
        a = rng.uniform(7, 10)
        b = a * rng.uniform(0.85, 1.0) if pair else a * rng.uniform(0.7, 1.0)
        c = rng.uniform(0, size, 2)
        theta = rng.uniform(0, np.pi)
        members = [c]
        if pair:  # two nuclei overlapping a little: one blob with a waist
            members.append(c + 1.7 * a * np.array([np.sin(theta), np.cos(theta)]))
        if not all(free(m, a) for m in members):
            continue
        for m in members:
            dy, dx = yy - m[0], xx - m[1]
            u = dx * np.cos(theta) + dy * np.sin(theta)
            v = -dx * np.sin(theta) + dy * np.cos(theta)
            inside = (u / a) ** 2 + (v / b) ** 2 <= 1
            blue[inside] = 150
            cyto += 90 * np.exp(-(dy ** 2 + dx ** 2) / (2 * (2.2 * a) ** 2))
            placed.append((m, a))
    texture = ndi.gaussian_filter(rng.normal(0, 1, (size, size)), 1.0)
    blue = blue * (1 + 0.6 * texture / texture.std()) + rng.normal(8, 3, blue.shape)
    cyto = cyto + rng.normal(5, 3, cyto.shape)
    image = np.stack([cyto, rng.normal(20, 5, blue.shape), blue, 0.8 * cyto]).clip(0, 255).astype(np.uint8)
    return image, np.array([m for m, _ in placed])


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_segmentation_finds_planted_nuclei(seed):
    image, true = draw_cells(seed=seed)
    nuclei = C.segment_nuclei(image[C.BLUE], C.CellParams())
    found = C.centroids(nuclei)
    assert abs(len(found) - len(true)) <= 1
    dist = np.sqrt(((true[:, None] - found[None]) ** 2).sum(-1))
    rows, cols = linear_sum_assignment(dist)
    matched = dist[rows, cols] <= 4.0  # nuclei have radius >= 7
    assert matched.sum() >= len(true) - 1
    # both members of each touching pair are found separately
    pairs = true[6:]
    for a, b in zip(pairs[0::2], pairs[1::2]):
        assert np.sqrt(((found - a) ** 2).sum(1)).min() <= 4.0 and np.sqrt(((found - b) ** 2).sum(1)).min() <= 4.0


def test_cells_contain_their_nucleus_and_partition():
    image, _ = draw_cells(seed=2)
    params = C.CellParams()
    nuclei = C.segment_nuclei(image[C.BLUE], params)
    cells = C.segment_cells(image, nuclei, params)
    assert cells.max() == nuclei.max()
    inside = nuclei > 0
    assert np.array_equal(cells[inside], nuclei[inside])  # a nucleus lies inside its own cell
    areas = np.bincount(cells.ravel(), minlength=nuclei.max() + 1)[1:]
    nuc_areas = np.bincount(nuclei.ravel(), minlength=nuclei.max() + 1)[1:]
    assert np.all(areas > nuc_areas)  # cells grew into the cytoplasm
    for label in range(1, cells.max() + 1):  # each cell is one connected piece
        assert ndi.label(cells == label)[1] == 1


@pytest.mark.parametrize("method", C.WATERSHEDS)
def test_watershed_puts_border_on_ridge(method):
    cost = np.array([[0, 10, 20, 30, 40, 50, 40, 30, 20, 10, 0]] * 3, dtype=float)
    markers = np.zeros(cost.shape, dtype=np.int32)
    markers[1, 0], markers[1, 10] = 1, 2
    labels = C.watershed(cost, markers, method=method)
    assert np.all(labels[:, :5] == 1) and np.all(labels[:, 6:] == 2)


def test_both_watersheds_find_the_same_nuclei():
    image, _ = draw_cells(seed=1)
    fast = C.segment_nuclei(image[C.BLUE], C.CellParams(watershed="skimage"))
    slow = C.segment_nuclei(image[C.BLUE], C.CellParams(watershed="flood"))
    assert fast.max() == slow.max() and (fast == slow).mean() > 0.99


def test_otsu_separates_two_modes():
    from hpa_ens.images import otsu_threshold  # segmentation's threshold (binning on the data range)

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(20, 3, 500), rng.normal(100, 5, 300)])
    assert 40 < otsu_threshold(values) < 80  # in the gap, near its middle


def test_crops_centred_padded_and_cached(tmp_path):
    image = np.zeros((4, 40, 40), dtype=np.uint8)
    image[:, 10, 30] = 200
    crops = C.crop_cells(image, np.array([[10.0, 30.0], [0.0, 0.0]]), crop_size=16)
    assert crops.shape == (2, 4, 16, 16)
    assert crops[0, :, 8, 8].tolist() == [200] * 4  # the centre pixel sits at crop_size // 2
    assert crops[1, :, :8, :].max() == 0  # padding above the image

    drawn, _ = draw_cells(size=96, seed=3, n_single=4, n_pairs=1)
    params = C.CellParams(crop_size=24, max_cells=5)
    cache = CC.CropCache(tmp_path, params)
    first = cache.get("img-a", drawn)
    assert first.crops.dtype == np.uint8 and first.crops.shape[1:] == (4, 24, 24)
    assert 1 <= len(first.crops) <= 5 and not first.fallback
    path = cache.path("img-a", 96)
    assert path.exists() and path.suffix == ".npz"
    stamp = path.stat().st_mtime_ns
    again = cache.get("img-a", drawn)
    assert path.stat().st_mtime_ns == stamp and np.array_equal(again.crops, first.crops)
    other = CC.CropCache(tmp_path, C.CellParams(crop_size=32))
    assert other.path("img-a", 96) != path  # other params, other folder
    with pytest.raises(ValueError, match="image_id"):
        cache.path("../evil", 96)


def test_no_nucleus_gives_one_centre_crop():
    cells = C.extract_cells(np.zeros((4, 32, 32), dtype=np.uint8), C.CellParams(crop_size=16))
    assert cells.fallback and cells.crops.shape == (1, 4, 16, 16)


def test_fixed_bags_pad_and_mask():
    sets = [C.CellCrops(np.full((n, 4, 8, 8), n, np.uint8), np.zeros((n, 2), np.float32), np.ones(n, np.int32))
            for n in (1, 3, 5)]
    bags, mask = CC.fixed_bags(sets, k=3, rng=np.random.default_rng(0))
    assert bags.shape == (3, 3, 4, 8, 8) and mask.sum(1).tolist() == [1, 3, 3]
    assert bags[0, 1:].max() == 0


def test_overlay_png(tmp_path):
    image, true = draw_cells(size=64, seed=0, n_single=3, n_pairs=0)
    path = C.save_overlay(tmp_path / "overlay.png", [image], C.CellParams(crop_size=16), true_centres=[true])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------- cell pooling
def test_pool_cell_probs_against_loops():
    rng = np.random.default_rng(0)
    probs = rng.uniform(0, 1, (9, 3))
    bag = np.array([0, 0, 1, 1, 1, 3, 3, 3, 3])  # bag 2 is empty
    for method in ("max", "mean", "noisy_or", "lse"):
        pooled = C.pool_cell_probs(probs, bag, n_bags=4, method=method, temperature=3.0)
        for b in range(4):
            rows = probs[bag == b]
            if not len(rows):
                assert np.all(pooled[b] == 0)
                continue
            expected = {"max": rows.max(0), "mean": rows.mean(0), "noisy_or": 1 - np.prod(1 - rows, axis=0),
                        "lse": np.log(np.mean(np.exp(3.0 * rows), axis=0)) / 3.0}[method]
            np.testing.assert_allclose(pooled[b], expected, rtol=1e-10)
    with pytest.raises(ValueError, match="'method'"):
        C.pool_cell_probs(probs, bag, method="median")


def test_torch_poolings_shapes_and_masks():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    pooled_max = M.MaskedPooling("max")(logits, mask)
    assert torch.allclose(pooled_max[0], logits[0, :2].amax(0))
    pooled_mean = M.MaskedPooling("mean")(logits, mask)
    assert torch.allclose(pooled_mean[0], logits[0, :2].mean(0))
    noisy = torch.sigmoid(M.MaskedPooling("noisy_or")(logits, mask))
    assert torch.allclose(noisy[1], 1 - torch.prod(1 - torch.sigmoid(logits[1]), 0), atol=1e-5)
    lse = M.LSEPooling(3, init_temperature=2.0)
    out = lse(logits, mask)
    assert out.shape == (2, 3)
    expected = (torch.logsumexp(2.0 * logits[0, :2], 0) - np.log(2)) / 2.0
    assert torch.allclose(out[0], expected, atol=1e-5)
    out.sum().backward()
    assert lse.rho.grad is not None and torch.isfinite(lse.rho.grad).all()

    att = M.AttentionMILPooling(in_features=6, n_classes=3, hidden=8)
    feats = torch.randn(2, 4, 6, requires_grad=True)
    image_logits = att(feats, mask)
    assert image_logits.shape == (2, 3)
    weights = att.last_attention
    assert weights.shape == (2, 4, 3)
    assert torch.allclose(weights.sum(1), torch.ones(2, 3), atol=1e-6)
    assert torch.all(weights[0, 2:] == 0)  # padded cells get no attention
    image_logits.sum().backward()
    assert feats.grad[0, 2:].abs().max() == 0


@pytest.mark.parametrize("pooling", ["attention", "max"])
def test_cell_mil_model_shapes(pooling):
    torch.manual_seed(0)
    model = M.CellMILModel(TINY, n_classes=5, pooling=pooling)
    bags = torch.rand(2, 3, 4, 32, 32)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    logits = model(bags, mask)
    assert logits.shape == (2, 5) and model.last_features.shape[0] == 2
    assert model.cell_logits(bags[0]).shape == (3, 5)
    logits.sum().backward()


# ------------------------------------------------------------------------------------- tiles
def test_tiles_round_trip_numpy_and_torch():
    images = np.arange(2 * 3 * 8 * 8, dtype=np.int32).reshape(2, 3, 8, 8)
    tiles = T.split_tiles(images, grid=2)
    assert tiles.shape == (8, 3, 4, 4)
    assert np.array_equal(tiles[1], images[0, :, :4, 4:])  # row-major: top-right second
    assert np.array_equal(T.merge_tiles(tiles, 2), images)
    torch_tiles = T.split_tiles(torch.from_numpy(images), grid=2)
    assert np.array_equal(torch_tiles.numpy(), tiles)
    assert T.tile_ids(["a", "b"])[:5] == ["a__t0", "a__t1", "a__t2", "a__t3", "b__t0"]
    assert T.repeat_labels(np.eye(2), 2).shape == (8, 2)


def test_tiles_odd_side_stay_inside():
    images = np.random.default_rng(0).integers(0, 255, (1, 4, 9, 9))
    tiles = T.split_tiles(images, grid=2)
    assert tiles.shape == (4, 4, 5, 5)
    assert np.array_equal(tiles[3], images[0, :, 4:9, 4:9])


def test_combine_tiles_methods():
    rng = np.random.default_rng(1)
    probs = rng.uniform(0, 1, (8, 5))
    blocks = probs.reshape(2, 4, 5)
    np.testing.assert_allclose(T.combine_tiles(probs, 2, "max"), blocks.max(1))
    np.testing.assert_allclose(T.combine_tiles(probs, 2, "mean"), blocks.mean(1))
    np.testing.assert_allclose(T.combine_tiles(probs, 2, "noisy_or"), 1 - np.prod(1 - blocks, axis=1))
    for method in T.COMBINE_METHODS:
        np.testing.assert_allclose(T.combine_tiles(torch.from_numpy(probs), 2, method).numpy(),
                                   T.combine_tiles(probs, 2, method), rtol=1e-6)
    with pytest.raises(ValueError, match="'tile_probs'"):
        T.combine_tiles(probs[:7], 2)


# --------------------------------------------------------------------------------- attention
def test_attention_head_registered_shapes_and_normalised(tmp_path):
    assert "attention" in HEADS
    torch.manual_seed(0)
    model = build_model(TINY, head="attention", n_classes=6, dropout=0.1)
    x = torch.rand(3, 4, 64, 64)
    logits = model(x)
    assert logits.shape == (3, 6)
    attention = model.last_attention
    assert attention.shape[:2] == (3, 6) and attention.shape[2] * attention.shape[3] > 1
    assert torch.all(attention >= 0)
    assert torch.allclose(attention.sum(dim=(2, 3)), torch.ones(3, 6), atol=1e-5)
    logits.sum().backward()
    assert model.head.attention_conv.weight.grad.abs().sum() > 0

    images = (x.numpy() * 255).astype(np.uint8)
    paths = H.save_attention_maps(model, x[:2], images[:2], ["a", "b"], tmp_path, n_classes_shown=2)
    assert [p.name for p in paths] == ["a_attention.png", "b_attention.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_spatial_attention_matches_pudae_formula():
    torch.manual_seed(0)
    pool = H.SpatialAttentionPool(in_features=5, n_classes=3)
    feats = torch.randn(2, 5, 3, 3)
    logit_maps = pool.logit_conv(feats).reshape(2, 3, 9)
    attention = torch.softmax(pool.attention_conv(feats).reshape(2, 3, 9), dim=2)
    assert torch.allclose(pool(feats), (logit_maps * attention).sum(2), atol=1e-6)


def test_forward_with_features_for_linear_and_attention_heads():
    torch.manual_seed(0)
    x = torch.rand(2, 4, 32, 32)
    for head in ("linear", "attention"):
        model = build_model(TINY, head=head, n_classes=4)
        logits, features = H.forward_with_features(model, x)
        assert logits.shape == (2, 4) and features.shape[0] == 2
        assert features.shape[1] == H.pooled_feature_dim(model, image_size=32)


# -------------------------------------------------------------------------------------- Lovász
def _jaccard_loss_of_set(mispredicted: frozenset, positives: frozenset) -> float:
    union = positives | mispredicted
    return len(mispredicted) / len(union) if union else 0.0


def _lovasz_brute(logits: np.ndarray, truth: np.ndarray) -> float:
    """Lovász extension of the Jaccard loss at the hinge errors, as the maximum over all orders
    (the Jaccard loss is submodular, so the extension is the max over its base polytope's vertices)."""
    errors = np.maximum(1 - logits * (2 * truth - 1), 0)
    positives = frozenset(np.flatnonzero(truth).tolist())
    best = -np.inf
    for order in itertools.permutations(range(len(errors))):
        total, chosen, previous = 0.0, set(), 0.0
        for i in order:
            chosen.add(i)
            value = _jaccard_loss_of_set(frozenset(chosen), positives)
            total += errors[i] * (value - previous)
            previous = value
        best = max(best, total)
    return best


def _lovasz_choquet(logits: np.ndarray, truth: np.ndarray) -> float:
    """Same extension as an integral: sum over levels t of Delta({i : error_i >= t}) dt."""
    errors = np.maximum(1 - logits * (2 * truth - 1), 0)
    positives = frozenset(np.flatnonzero(truth).tolist())
    levels = np.unique(np.concatenate([errors, [0.0]]))
    total = 0.0
    for low, high in zip(levels[:-1], levels[1:]):
        total += (high - low) * _jaccard_loss_of_set(frozenset(np.flatnonzero(errors >= high).tolist()), positives)
    return total


def test_lovasz_matches_brute_force():
    rng = np.random.default_rng(0)
    for trial in range(6):
        logits = rng.normal(0, 1.5, (5, 3))
        truth = (rng.random((5, 3)) < 0.4).astype(float)
        truth[:, 0] = 0 if trial % 2 else truth[:, 0]  # a class without positives in the batch
        per_class = LX.lovasz_hinge_per_class(torch.tensor(logits), torch.tensor(truth)).numpy()
        for k in range(3):
            assert per_class[k] == pytest.approx(_lovasz_brute(logits[:, k], truth[:, k]), abs=1e-9)
            assert per_class[k] == pytest.approx(_lovasz_choquet(logits[:, k], truth[:, k]), abs=1e-9)


def test_lovasz_zero_when_margins_hold_and_gradient_flows():
    truth = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    perfect = (2 * truth - 1) * 3.0
    assert LX.lovasz_hinge_per_class(perfect, truth).abs().max() == 0
    logits = torch.zeros(3, 2, requires_grad=True)
    loss = build_loss("lovasz")(logits, truth)
    loss.backward()
    assert logits.grad.abs().sum() > 0
    # one gradient step lowers the loss
    stepped = (logits - 0.1 * logits.grad).detach()
    assert build_loss("lovasz")(stepped, truth) < loss
    skip = LOSSES.get("lovasz")(skip_empty=True)
    only_negatives = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert torch.isfinite(skip(torch.randn(2, 2), only_negatives))
    assert torch.isfinite(build_loss({"bce": 1.0, "lovasz": 0.5})(torch.randn(3, 2), truth))


# ---------------------------------------------------------------------------------- center loss
def test_center_loss_decreases_toward_centres():
    torch.manual_seed(0)
    center = LX.CenterLoss(n_classes=4, feat_dim=6)
    with torch.no_grad():
        center.centers.copy_(torch.randn(4, 6))
    targets = torch.tensor([[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.float32)
    features = torch.randn(3, 6)
    goal = center.target_centers(targets)
    assert torch.allclose(goal[1], (center.centers[1] + center.centers[2]) / 2)
    before = center(features, targets)
    halfway = features + 0.5 * (goal - features)
    assert center(halfway, targets) < before
    assert center(goal, targets).item() == pytest.approx(0.0, abs=1e-12)
    # the unlabelled row is ignored
    changed = features.clone()
    changed[2] += 100
    assert center(changed, targets).item() == pytest.approx(before.item())
    # gradient descent on the features (and the centres) lowers it too
    feats = features.clone().requires_grad_(True)
    optimiser = torch.optim.SGD([feats, *center.parameters()], lr=0.5)
    losses = []
    for _ in range(5):
        optimiser.zero_grad()
        loss = center(feats, targets)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


# ------------------------------------------------------------------------------- single-label
def test_single_label_weights_and_samplers():
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1]])
    weights = SM.single_label_weights(labels, single_weight=3.0)
    assert weights.mean() == pytest.approx(1.0) and weights[0] == pytest.approx(3 * weights[1])
    draws = SAMPLERS.get("single_label")(labels, np.random.default_rng(0), single_weight=3.0)
    assert len(draws) == 4
    many = np.concatenate([SAMPLERS.get("single_label")(labels, np.random.default_rng(s), single_weight=3.0)
                           for s in range(300)])
    share_single = np.isin(many, [0, 2]).mean()
    assert 0.68 < share_single < 0.82  # expected 3/4
    first = SAMPLERS.get("single_label_first")
    assert sorted(first(labels, np.random.default_rng(0), epoch=0, phase1_epochs=1)) == [0, 2]
    assert sorted(first(labels, np.random.default_rng(0), epoch=1, phase1_epochs=1)) == [0, 1, 2, 3]
    with pytest.raises(TypeError):
        first(labels, np.random.default_rng(0))  # the trainer must pass the epoch
