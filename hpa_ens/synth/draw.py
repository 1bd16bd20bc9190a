"""Drawing core of the synthetic HPA-like images (used by :mod:`hpa_ens.synth`).

Everything is drawn directly at the target size ``S`` with numpy on whole-image coordinate grids:
per-cell distance fields are computed for all cells at once (shape ``(n_cells, S, S)``) and each pixel
then takes the fields of the cell that owns it. Dots and blobs are splatted as impulses and blurred
with one Gaussian filter per class; textures come from band-limited noise made with one inverse FFT.
Lengths are expressed in units of the mean cell radius ``R`` (cells are about a quarter to a third of
the image side), so an image keeps its look when ``S`` changes and the protein patterns survive
downsampling to 64-96 px.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..classes import N_CLASSES

TAU = 2.0 * np.pi
#: Chance that an image holds a dividing cell (condensed chromosomes in blue) whatever its labels, so
#: the blue channel alone does not give away the mitotic-spindle class.
P_MITOTIC_DECOY = 0.08


# --------------------------------------------------------------------------------------------------
# small numeric helpers


def noise_fields(rng: np.random.Generator, size: int, scales_px) -> np.ndarray:
    """Smooth Gaussian random fields with unit standard deviation, one per correlation length.

    Parameters
    ----------
    rng : numpy Generator
    size : int, the image side S
    scales_px : sequence of float, the Gaussian smoothing length of each field, in pixels

    Returns
    -------
    fields : ndarray of shape (len(scales_px), S, S), float32
    """
    scales = np.asarray(scales_px, dtype=np.float64)
    white = rng.standard_normal((len(scales), size, size), dtype=np.float32)
    spectrum = np.fft.rfft2(white)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f2 = fy * fy + fx * fx
    # Fourier transform of a Gaussian filter of width sigma: exp(-2 pi^2 sigma^2 f^2).
    spectrum *= np.exp(-2.0 * np.pi**2 * scales[:, None, None] ** 2 * f2[None]).astype(np.float32)
    fields = np.fft.irfft2(spectrum, s=(size, size))
    fields /= fields.std(axis=(1, 2), keepdims=True) + 1e-12
    return fields.astype(np.float32)


def splat(size: int, ys: np.ndarray, xs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Bilinear splat of weighted points onto an ``(S, S)`` float32 image (points outside are dropped)."""
    ys = np.asarray(ys, dtype=np.float64)
    xs = np.asarray(xs, dtype=np.float64)
    weights = np.broadcast_to(np.asarray(weights, dtype=np.float64), ys.shape)
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    fy = ys - y0
    fx = xs - x0
    flat_index = []
    flat_weight = []
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy = y0 + dy
        xx = x0 + dx
        ok = (yy >= 0) & (yy < size) & (xx >= 0) & (xx < size)
        flat_index.append(yy[ok] * size + xx[ok])
        flat_weight.append((weights * w)[ok])
    image = np.bincount(np.concatenate(flat_index), np.concatenate(flat_weight), minlength=size * size)
    return image.reshape(size, size).astype(np.float32)


def blobs(size: int, ys, xs, amplitudes, sigma_px: float) -> np.ndarray:
    """Gaussian spots of peak about ``amplitudes`` at (ys, xs), width ``sigma_px``: one filter for all."""
    if len(ys) == 0:
        return np.zeros((size, size), np.float32)
    image = splat(size, ys, xs, amplitudes)
    sigma = max(float(sigma_px), 0.35)
    return ndimage.gaussian_filter(image, sigma, mode="constant", truncate=3.0) * np.float32(TAU * sigma * sigma)


def rings(size: int, ys, xs, amplitudes, radius_px: float) -> np.ndarray:
    """Hollow rings: a broad Gaussian spot minus a narrower one, clipped at zero."""
    outer = blobs(size, ys, xs, amplitudes, radius_px)
    inner = blobs(size, ys, xs, amplitudes, 0.6 * radius_px)
    return np.clip(1.6 * (outer - 0.85 * inner), 0.0, None)


def sample_points(rng: np.random.Generator, weight: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` sub-pixel positions with probability proportional to ``weight`` (shape (S, S))."""
    size = weight.shape[0]
    cumulative = np.cumsum(weight.ravel(), dtype=np.float64)
    if n <= 0 or cumulative[-1] <= 0:
        return np.zeros(0), np.zeros(0)
    flat = np.searchsorted(cumulative, rng.random(n) * cumulative[-1], side="right")
    flat = np.minimum(flat, size * size - 1)
    ys = flat // size + rng.random(n) - 0.5
    xs = flat % size + rng.random(n) - 0.5
    return ys, xs


def angle_diff(a, b):
    """Signed smallest difference between angles, in (-pi, pi]."""
    return (a - b + np.pi) % TAU - np.pi


def segment_distance(yy, xx, y0, x0, y1, x1):
    """Distance of every pixel to the segment (y0, x0)-(y1, x1)."""
    vy, vx = y1 - y0, x1 - x0
    length2 = vy * vy + vx * vx + 1e-12
    t = np.clip(((yy - y0) * vy + (xx - x0) * vx) / length2, 0.0, 1.0)
    return np.hypot(yy - (y0 + t * vy), xx - (x0 + t * vx))


# --------------------------------------------------------------------------------------------------
# the scene: cells, nuclei, nucleoli and the per-pixel fields every pattern uses


class Scene:
    """Geometry of one image: cells, nuclei, nucleoli and per-pixel fields of the owning cell.

    Attributes (arrays of shape (S, S) unless noted)
    ----------
    R : float, mean cell radius in pixels
    owner : int, index of the nearest cell; ``cell`` soft cell mask in [0, 1]
    d1, d2 : normalised distance to the nearest / second-nearest cell outline (1 on the outline)
    dn : normalised distance to the owner's nucleus outline; ``rn`` / ``phin`` polar coordinates
        around the nucleus centre (pixels / radians); ``nuc_r`` nucleus radius of the owner (pixels)
    nuc, cyto : soft nucleus and cytoplasm masks
    phic : angle around the owner's cell centre
    expr : the owner cell's expression level of the protein (0 for non-expressing cells)
    """

    def __init__(self, rng: np.random.Generator, size: int):
        S = size
        self.S = S
        self.rng = rng
        n_target = int(rng.integers(3, 9))
        coverage = rng.uniform(0.5, 0.75)
        R = float(np.clip(S * np.sqrt(coverage / (n_target * np.pi)), 0.12 * S, 0.2 * S))
        self.R = R
        centres = []
        for _ in range(300):
            c = rng.uniform(0.06 * S, 0.94 * S, size=2)
            if all(np.hypot(*(c - o)) >= 1.45 * R for o in centres):
                centres.append(c)
                if len(centres) == n_target:
                    break
        centres = np.array(centres)
        n = len(centres)
        self.n = n
        radius = R * rng.uniform(0.85, 1.15, n)
        elong = rng.uniform(0.0, 0.25, n)
        theta = rng.uniform(0, np.pi, n)
        harm_amp = rng.uniform(0.0, 0.07, (n, 3))
        harm_phase = rng.uniform(0, TAU, (n, 3))

        yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
        self.yy, self.xx = yy, xx
        # nuclei: offset from the cell centre, elliptical
        nuc_r = radius * rng.uniform(0.38, 0.5, n)
        off_a = rng.uniform(0, TAU, n)
        off_r = radius * rng.uniform(0.0, 0.18, n)
        ncy = centres[:, 0] + off_r * np.sin(off_a)
        ncx = centres[:, 1] + off_r * np.cos(off_a)
        n_elong = rng.uniform(0.0, 0.2, n)
        n_theta = rng.uniform(0, np.pi, n)

        # Distances are only computed in a box around each cell (a cell covers a small part of the
        # image); outside its box a cell is "far" (FAR), which no mask or band below reaches.
        FAR = np.float32(9.0)
        boxes = []
        dcell = np.full((n, S, S), FAR, np.float32)
        harmonics = (harm_amp * np.exp(1j * harm_phase)).astype(np.complex64)
        for c in range(n):
            half = 1.7 * radius[c] * (1 + elong[c])
            box = (slice(max(0, int(centres[c, 0] - half)), min(S, int(centres[c, 0] + half) + 2)),
                   slice(max(0, int(centres[c, 1] - half)), min(S, int(centres[c, 1] + half) + 2)))
            boxes.append(box)
            dy = yy[box] - np.float32(centres[c, 0])
            dx = xx[box] - np.float32(centres[c, 1])
            r = np.hypot(dy, dx) + np.float32(1e-6)
            z = (dx + 1j * dy).astype(np.complex64) / r
            z2 = z * z
            wobble = 1.0 + (harmonics[c, 0] * z2 + harmonics[c, 1] * z2 * z + harmonics[c, 2] * z2 * z2).real
            ct, st = np.float32(np.cos(theta[c])), np.float32(np.sin(theta[c]))
            u = (dx * ct + dy * st) / np.float32(radius[c] * (1 + elong[c]))
            v = (-dx * st + dy * ct) / np.float32(radius[c] * (1 - elong[c]))
            dcell[c][box] = np.sqrt(u * u + v * v) / wobble

        if n >= 2:
            owner = np.argmin(dcell, axis=0)
            part = np.partition(dcell, 1, axis=0)
            d1, d2 = part[0], part[1]
        else:
            owner = np.zeros((S, S), np.int64)
            d1 = dcell[0]
            d2 = np.full((S, S), FAR, np.float32)
        self.owner = owner
        self.d1, self.d2 = d1, d2
        # per-pixel fields of the owning cell, filled box by box
        self.phic = np.zeros((S, S), np.float32)
        self.dn = np.full((S, S), FAR, np.float32)
        self.rn = np.full((S, S), FAR * S, np.float32)
        self.phin = np.zeros((S, S), np.float32)
        for c, box in enumerate(boxes):
            mine = owner[box] == c
            dy = yy[box][mine] - np.float32(centres[c, 0])
            dx = xx[box][mine] - np.float32(centres[c, 1])
            self.phic[box][mine] = np.arctan2(dy, dx)
            ndy = yy[box][mine] - np.float32(ncy[c])
            ndx = xx[box][mine] - np.float32(ncx[c])
            nct, nst = np.float32(np.cos(n_theta[c])), np.float32(np.sin(n_theta[c]))
            nu = (ndx * nct + ndy * nst) / np.float32(1 + n_elong[c])
            nv = (-ndx * nst + ndy * nct) / np.float32(1 - n_elong[c])
            self.dn[box][mine] = np.sqrt(nu * nu + nv * nv) / np.float32(nuc_r[c])
            self.rn[box][mine] = np.hypot(ndy, ndx)
            self.phin[box][mine] = np.arctan2(ndy, ndx)
        self.nuc_r = nuc_r[owner].astype(np.float32)
        edge = max(0.6 / R, 0.03)
        self.cell = np.clip((1.0 - d1) / (2 * edge) + 0.5, 0.0, 1.0)
        self.nuc = self.cell * np.clip((1.0 - self.dn) / (2 * max(0.6 / nuc_r.mean(), 0.04)) + 0.5, 0.0, 1.0)
        self.cyto = np.clip(self.cell - self.nuc, 0.0, 1.0)
        self.centres = centres
        self.radius = radius
        self.nuc_centres = np.stack([ncy, ncx], axis=1)
        self.nuc_radius = nuc_r
        # most cells express the protein, at varying levels; a few do not (as in real HPA images)
        level = rng.uniform(0.35, 1.0, n) * (rng.random(n) > 0.12)
        if level.max() == 0:
            level[int(rng.integers(n))] = 1.0
        self.level = level
        self.expr = level[owner].astype(np.float32)

        # nucleoli: 1-4 per nucleus, inside it
        k = rng.integers(1, 5, n)
        cell_of = np.repeat(np.arange(n), k)
        ang = rng.uniform(0, TAU, cell_of.size)
        rad = nuc_r[cell_of] * rng.uniform(0.0, 0.55, cell_of.size)
        self.nucleoli = np.stack([ncy[cell_of] + rad * np.sin(ang), ncx[cell_of] + rad * np.cos(ang)], axis=1)
        self.nucleoli_cell = cell_of
        self.nucleoli_sigma = float(np.mean(nuc_r)) * rng.uniform(0.13, 0.19)
        self.nucleoli_field = np.clip(
            blobs(S, self.nucleoli[:, 0], self.nucleoli[:, 1], np.ones(cell_of.size), self.nucleoli_sigma), 0, 1
        )

        # noise fields shared by several patterns: fine texture, mid texture, ER network, worms, meander
        self.noise = noise_fields(rng, S, [0.04 * R, 0.1 * R, 0.09 * R, 0.07 * R, 0.05 * R, 0.3 * R])

        # the dividing cell: one mitotic cell (forced when the spindle class is drawn)
        self.mitotic = -1
        self.spindle_axis = 0.0

    # ---- patterns shared by the reference stains and the protein channel
    def microtubules(self) -> np.ndarray:
        if not hasattr(self, "_mt"):
            rng = self.rng
            n_lines = int(rng.integers(16, 28))
            phase = rng.uniform(0, TAU, self.n)[self.owner]
            curl = rng.uniform(-1.5, 1.5, self.n)[self.owner]
            arg = n_lines * self.phin + phase + curl * self.rn / self.R + 2.5 * self.noise[5] + 0.8 * self.noise[1]
            lines = ((1.0 + np.cos(arg)) * 0.5) ** 4
            fade = 0.45 + 0.55 * np.exp(-np.clip(self.dn - 1.0, 0, None) / 2.5)
            broken = 0.5 + 0.5 * np.tanh(1.5 * self.noise[1] + 0.6)
            self._mt = (lines * broken * fade * (self.cyto + 0.2 * self.nuc)).astype(np.float32)
        return self._mt

    def er(self) -> np.ndarray:
        if not hasattr(self, "_er"):
            ridges = np.exp(-((self.noise[2] / 0.35) ** 2))
            perinuclear = 0.35 + 0.65 * np.exp(-np.clip(self.dn - 1.0, 0, None) / 1.3)
            envelope = np.exp(-((self.dn - 1.0) / 0.12) ** 2)
            self._er = (ridges * perinuclear * self.cyto + 0.5 * envelope * self.cell).astype(np.float32)
        return self._er

    def perinuclear_point(self, gap: float, spread: float = 0.0):
        """One position per cell just outside its nucleus, at a random angle; shapes (n,), (n,), (n,)."""
        ang = self.rng.uniform(0, TAU, self.n)
        dist = self.nuc_radius + gap * self.R + spread * self.R * self.rng.standard_normal(self.n)
        ys = self.nuc_centres[:, 0] + dist * np.sin(ang)
        xs = self.nuc_centres[:, 1] + dist * np.cos(ang)
        return ys, xs, ang


# --------------------------------------------------------------------------------------------------
# the 28 protein patterns: f(scene) -> (S, S) float32, roughly in [0, 1], before per-cell expression


def _dots(sc: Scene, weight: np.ndarray, per_cell: tuple[int, int], sigma_r: float, amp=(0.7, 1.0)) -> np.ndarray:
    n = int(sc.rng.integers(per_cell[0], per_cell[1] + 1)) * sc.n
    ys, xs = sample_points(sc.rng, weight, n)
    return blobs(sc.S, ys, xs, sc.rng.uniform(*amp, ys.size), sigma_r * sc.R)


def _nucleoplasm(sc):
    return sc.nuc * (0.75 + 0.25 * np.tanh(sc.noise[0])) * (1 - 0.75 * sc.nucleoli_field)


def _nuclear_membrane(sc):
    width = max(0.07 * sc.R, 0.6)
    return np.exp(-(((sc.dn - 1.0) * sc.nuc_r / width) ** 2)) * sc.cell * (0.8 + 0.2 * np.tanh(sc.noise[0]))


def _nucleoli(sc):
    return sc.nucleoli_field * sc.cell


def _fibrillar_center(sc):
    rng = sc.rng
    k = rng.integers(1, 4, len(sc.nucleoli))
    src = np.repeat(np.arange(len(sc.nucleoli)), k)
    ang = rng.uniform(0, TAU, src.size)
    rad = sc.nucleoli_sigma * rng.uniform(0, 0.9, src.size)
    ys = sc.nucleoli[src, 0] + rad * np.sin(ang)
    xs = sc.nucleoli[src, 1] + rad * np.cos(ang)
    return blobs(sc.S, ys, xs, rng.uniform(0.8, 1.0, src.size), 0.035 * sc.R) + 0.15 * sc.nucleoli_field


def _speckles(sc):
    weight = sc.nuc * (1 - sc.nucleoli_field)
    return _dots(sc, weight, (12, 22), 0.05 * 1.0, (0.5, 0.9)) + 0.15 * sc.nuc


def _nuclear_bodies(sc):
    return 1.3 * _dots(sc, sc.nuc * (1 - sc.nucleoli_field), (2, 6), 0.08, (0.8, 1.0)) + 0.04 * sc.nuc


def _er(sc):
    return sc.er()


def _golgi(sc):
    _, _, ang = sc.perinuclear_point(0.0)
    psi = ang[sc.owner]
    across = np.exp(-(((sc.rn - sc.nuc_r - 0.17 * sc.R) / (0.12 * sc.R)) ** 2))
    along = np.exp(-((angle_diff(sc.phin, psi) / 0.65) ** 2))
    return across * along * (0.55 + 0.45 * np.tanh(sc.noise[0] + 0.5)) * sc.cell


def _peroxisomes(sc):
    return _dots(sc, sc.cyto, (20, 30), 0.045)


def _endosomes(sc):
    weight = sc.cyto * (0.5 + np.exp(-np.clip(sc.dn - 1, 0, None) / 1.5))
    return _dots(sc, weight, (12, 20), 0.06)


def _lysosomes(sc):
    weight = sc.cyto * np.exp(-np.clip(sc.dn - 1, 0, None) / 1.0)
    return _dots(sc, weight, (8, 14), 0.075)


def _intermediate_filaments(sc):
    arg = TAU * sc.rn / (0.16 * sc.R) + 2.5 * sc.noise[5] + 1.5 * sc.noise[1]
    lines = ((1.0 + np.cos(arg)) * 0.5) ** 5
    return lines * sc.cyto * (0.5 + 0.5 * np.exp(-np.clip(sc.dn - 1, 0, None) / 2.0))


def _actin(sc):
    theta = sc.rng.uniform(0, np.pi, sc.n)[sc.owner]
    phase = sc.rng.uniform(0, TAU, sc.n)[sc.owner]
    proj = sc.xx * np.cos(theta) + sc.yy * np.sin(theta)
    fibres = ((1.0 + np.cos(TAU * proj / (0.17 * sc.R) + phase + 0.8 * sc.noise[5])) * 0.5) ** 6
    cortex = np.exp(-(((sc.d1 - 0.95) / max(0.06, 0.6 / sc.R)) ** 2))
    return (fibres * (0.35 + 0.65 * np.clip(sc.d1, 0, 1)) * sc.cyto + 0.6 * cortex * sc.cell)


def _focal_adhesions(sc):
    n_dash = sc.rng.integers(14, 24, sc.n)[sc.owner]
    phase = sc.rng.uniform(0, TAU, sc.n)[sc.owner]
    band = np.exp(-(((sc.d1 - 0.84) / 0.11) ** 2))
    dashes = ((1.0 + np.cos(n_dash * sc.phic + phase)) * 0.5) ** 4
    return 1.4 * band * dashes * (sc.noise[1] > -0.5) * sc.cell


def _microtubules(sc):
    return sc.microtubules()


def _microtubule_ends(sc):
    weight = sc.cell * np.exp(-(((sc.d1 - 0.85) / 0.1) ** 2)) * (sc.microtubules() + 0.05)
    return _dots(sc, weight, (8, 14), 0.04) + 0.15 * sc.microtubules()


def _cytokinetic_bridge(sc):
    out = np.zeros((sc.S, sc.S), np.float32)
    if sc.n < 2:
        a, b = sc.centres[0], sc.centres[0] + sc.R * np.array([0.0, 1.0])
    else:
        dist = np.hypot(*(sc.centres[:, None] - sc.centres[None]).transpose(2, 0, 1)) + np.eye(sc.n) * 1e9
        i, j = np.unravel_index(int(np.argmin(dist)), dist.shape)
        a, b = sc.centres[i], sc.centres[j]
    mid = (a + b) / 2
    half = (b - a) * 0.28
    dseg = segment_distance(sc.yy, sc.xx, mid[0] - half[0], mid[1] - half[1], mid[0] + half[0], mid[1] + half[1])
    out += np.exp(-((dseg / max(0.05 * sc.R, 0.5)) ** 2))
    out += blobs(sc.S, [mid[0]], [mid[1]], [1.0], 0.08 * sc.R)
    return out


def _spindle(sc):
    if sc.mitotic < 0:
        return np.zeros((sc.S, sc.S), np.float32)
    c = sc.nuc_centres[sc.mitotic]
    a = sc.spindle_axis
    u = (sc.xx - c[1]) * np.cos(a) + (sc.yy - c[0]) * np.sin(a)
    v = -(sc.xx - c[1]) * np.sin(a) + (sc.yy - c[0]) * np.cos(a)
    L = 0.6 * sc.R
    half_width = 0.32 * sc.R * np.clip(1 - (u / L) ** 2, 0, None) + 1e-3
    inside = np.exp(-((v / half_width) ** 4)) * (np.abs(u) < L)
    fibres = 0.55 + 0.45 * np.cos(7 * np.pi * v / half_width)
    poles = blobs(sc.S, [c[0] + L * np.sin(a), c[0] - L * np.sin(a)], [c[1] + L * np.cos(a), c[1] - L * np.cos(a)],
                  [1.0, 1.0], 0.07 * sc.R)
    return inside * fibres + poles


def _mtoc(sc):
    ys, xs, _ = sc.perinuclear_point(0.14)
    return blobs(sc.S, ys, xs, np.ones(sc.n), 0.085 * sc.R) + 0.35 * blobs(sc.S, ys, xs, np.ones(sc.n), 0.25 * sc.R)


def _centrosome(sc):
    ys, xs, ang = sc.perinuclear_point(0.1)
    two = sc.rng.random(sc.n) < 0.5
    ys2 = ys[two] + 0.09 * sc.R * np.sin(ang[two] + np.pi / 2)
    xs2 = xs[two] + 0.09 * sc.R * np.cos(ang[two] + np.pi / 2)
    return blobs(sc.S, np.r_[ys, ys2], np.r_[xs, xs2], np.ones(sc.n + two.sum()), 0.045 * sc.R)


def _lipid_droplets(sc):
    n = int(sc.rng.integers(3, 8)) * sc.n
    ys, xs = sample_points(sc.rng, sc.cyto, n)
    return rings(sc.S, ys, xs, sc.rng.uniform(0.7, 1.0, ys.size), 0.085 * sc.R)


def _plasma_membrane(sc):
    return np.exp(-(((sc.d1 - 0.96) / max(0.06, 0.6 / sc.R)) ** 2)) * (0.8 + 0.2 * np.tanh(sc.noise[1])) + 0.08 * sc.cyto


def _cell_junctions(sc):
    if sc.n < 2:
        return np.zeros((sc.S, sc.S), np.float32)
    gap = sc.d2 - sc.d1
    touching = (sc.d1 < 1.08) & (sc.d2 < 1.15)
    return np.exp(-((gap / max(0.07, 0.9 / sc.R)) ** 2)) * touching * (0.75 + 0.25 * np.tanh(sc.noise[1]))


def _mitochondria(sc):
    worms = np.exp(-((sc.noise[1] / 0.4) ** 2)) * (sc.noise[4] > 0.0)
    return 1.4 * worms * sc.cyto * (0.55 + 0.45 * np.exp(-np.clip(sc.dn - 1, 0, None) / 2.0))


def _aggresome(sc):
    ys, xs, _ = sc.perinuclear_point(0.12)
    keep = sc.rng.random(sc.n) < 0.85
    return blobs(sc.S, ys[keep], xs[keep], np.ones(keep.sum()), 0.17 * sc.R) * 1.1


def _cytosol(sc):
    return sc.cyto * (0.7 + 0.3 * np.tanh(sc.noise[1])) * (1 - 0.3 * np.clip(sc.d1, 0, 1)) + 0.08 * sc.nuc


def _cytoplasmic_bodies(sc):
    return _dots(sc, sc.cyto, (1, 3), 0.1, (0.9, 1.0)) * 1.2


def _rods_rings(sc):
    rng = sc.rng
    n_rings = int(rng.integers(1, 3)) * sc.n
    ys, xs = sample_points(rng, sc.cyto, n_rings)
    out = rings(sc.S, ys, xs, np.ones(ys.size), 0.065 * sc.R)
    n_rods = int(rng.integers(1, 3)) * sc.n
    ys, xs = sample_points(rng, sc.cyto, n_rods)
    ang = rng.uniform(0, np.pi, ys.size)
    half = 0.15 * sc.R
    width = max(0.035 * sc.R, 0.45)
    for y, x, a in zip(ys, xs, ang):
        d = segment_distance(sc.yy, sc.xx, y - half * np.sin(a), x - half * np.cos(a), y + half * np.sin(a), x + half * np.cos(a))
        out += np.exp(-((d / width) ** 2))
    return out


#: Pattern of class k is PATTERNS[k] (a tuple, indexed by class id; no name lookup).
PATTERNS = (
    _nucleoplasm, _nuclear_membrane, _nucleoli, _fibrillar_center, _speckles, _nuclear_bodies, _er, _golgi,
    _peroxisomes, _endosomes, _lysosomes, _intermediate_filaments, _actin, _focal_adhesions, _microtubules,
    _microtubule_ends, _cytokinetic_bridge, _spindle, _mtoc, _centrosome, _lipid_droplets, _plasma_membrane,
    _cell_junctions, _mitochondria, _aggresome, _cytosol, _cytoplasmic_bodies, _rods_rings,
)
assert len(PATTERNS) == N_CLASSES

#: Classes whose pattern belongs to single events (not every cell), drawn at full strength regardless of
#: the per-cell expression level.
_EVENT_CLASSES = frozenset({16, 17})
SPINDLE = 17


def render(rng: np.random.Generator, size: int, labels: np.ndarray) -> np.ndarray:
    """Draw one four-channel image.

    Parameters
    ----------
    rng : numpy Generator (the image's own stream)
    size : int, image side S
    labels : array of class ids (1..5 ints in 0..27)

    Returns
    -------
    image : ndarray of shape (4, S, S), uint8, channels in ``CHANNELS`` order (red, green, blue, yellow)
    """
    sc = Scene(rng, size)
    labels = [int(k) for k in labels]
    if SPINDLE in labels or rng.random() < P_MITOTIC_DECOY:
        sc.mitotic = int(rng.integers(sc.n))
        sc.spindle_axis = float(rng.uniform(0, np.pi))

    # blue: textured nuclei with darker nucleoli; a dividing cell shows a bar of condensed chromosomes
    blue = sc.nuc * (0.62 + 0.22 * np.tanh(sc.noise[0]) + 0.1 * np.tanh(sc.noise[1])) * (1 - 0.35 * sc.nucleoli_field)
    if sc.mitotic >= 0:
        m = sc.mitotic
        c = sc.nuc_centres[m]
        a = sc.spindle_axis
        u = (sc.xx - c[1]) * np.cos(a) + (sc.yy - c[0]) * np.sin(a)
        v = -(sc.xx - c[1]) * np.sin(a) + (sc.yy - c[0]) * np.cos(a)
        plate = np.exp(-((u / (0.09 * sc.R)) ** 2)) * np.exp(-((v / (0.38 * sc.R)) ** 6))
        blue = np.where(sc.owner == m, 1.1 * plate * (0.8 + 0.2 * np.tanh(sc.noise[0])), blue)
    red = sc.microtubules() * 0.6 + 0.07 * sc.cell
    yellow = sc.er() * 0.6 + 0.06 * sc.cell

    green = 0.05 * sc.cell * (1 + 0.3 * np.tanh(sc.noise[1]))  # weak unspecific background
    for k in labels:
        strength = rng.uniform(0.6, 1.2)
        pattern = PATTERNS[k](sc)
        if k not in _EVENT_CLASSES:
            pattern = pattern * sc.expr
        green = green + strength * pattern

    stack = np.stack([red, green, blue, yellow]).astype(np.float32)
    # optics and camera: blur, gain, background and noise, each random per image and channel
    blur = rng.uniform(0.25, 0.6) * size / 128
    stack = ndimage.gaussian_filter(stack, (0, blur, blur), truncate=3.0) if blur > 0.2 else stack
    gain = rng.uniform(0.55, 0.95, (4, 1, 1)).astype(np.float32)
    offset = rng.uniform(0.005, 0.04, (4, 1, 1)).astype(np.float32)
    noise_sd = rng.uniform(0.008, 0.03)
    stack = stack * gain + offset
    stack += noise_sd * np.sqrt(np.clip(stack, 0, None) + 0.02) * rng.standard_normal(stack.shape).astype(np.float32)
    return np.clip(np.rint(stack * 255.0), 0, 255).astype(np.uint8)


def transform_copy(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, str]:
    """A near-duplicate of ``image`` (4, S, S) uint8: a flip, a small shift, a brightness change, noise.

    Returns the copy and a description such as ``"flip=h;shift=1,-2;gain=1.07;noise=2.0"`` (applied in
    that order; ``flip`` is ``h``, ``v`` or ``none``).
    """
    size = image.shape[-1]
    flip = ("none", "h", "v")[int(rng.integers(3))]
    out = image.astype(np.float32)
    if flip == "h":
        out = out[:, :, ::-1]
    elif flip == "v":
        out = out[:, ::-1, :]
    max_shift = max(1, int(round(0.02 * size)))
    dy, dx = (int(s) for s in rng.integers(-max_shift, max_shift + 1, 2))
    out = ndimage.shift(out, (0, dy, dx), order=0, mode="nearest")
    gain = round(float(rng.uniform(0.85, 1.15)), 3)
    noise = round(float(rng.uniform(1.0, 3.0)), 2)
    out = out * gain + noise * rng.standard_normal(out.shape).astype(np.float32)
    copy = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return copy, f"flip={flip};shift={dy},{dx};gain={gain};noise={noise}"
