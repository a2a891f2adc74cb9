"""Seeded synthetic degradations for paired restoration data.

Every function takes a clean float32 RGB image ``x`` of shape (H, W, 3) in
[0, 1] and ``rng`` (a ``numpy.random.Generator``, an int seed or a
``SeedSequence``) and returns the degraded image (float32, same H and W; the
SR task returns the low-resolution image). Blur functions also return the
kernel they used (float64, odd size, non-negative, sums to 1). The same rng
state gives the same output bytes; nothing reads global random state.

Recipes (from the literature; see /shared/reference data_and_metrics.md §4):

==============  ==============================================================
rain streaks    Yang et al. (CVPR'17): O = B + sum_t S_t, rendered here with a
                screen blend. One layer: sparse impulses N = 1[U<rho]*U(0.5,1),
                rho in [0.5 %, 2 %], Gaussian blur sigma in [0.5, 1], then
                convolution with an antialiased line kernel (length 15-40 px,
                angle within 30 deg of vertical), scaled to [0, a], a in
                [0.6, 1]. O = 1 - (1 - B)(1 - S). Heavy: 3-5 layers, then a
                veil O = alpha*O + (1 - alpha)*A, alpha in [0.8, 0.95],
                A in [0.8, 1].
snow            Snow100K / CSD: three flake scales with densities
                (2e-3, 8e-4, 2e-4) and Gaussian radii (1, 2, 3.5) px; each
                layer normalised so an isolated flake peaks at 1, optionally
                motion-blurred (length 3-15), Z = max_s clip(1.6 F_s) * op_s,
                op = (0.6, 0.8, 1). I = (J(1-Z) + C Z) T + A (1-T), C in
                [0.9, 1], T in [0.8, 0.95], A in [0.8, 1].
motion blur     Boracchi & Foi (TIP 2012) random camera trajectory as used by
                DeblurGAN: 2000 steps of fixed length max_len/1999 whose
                velocity gets Gaussian shake, a centripetal pull and rare
                large impulses. The PSF is the trajectory (its first
                ``exposure`` fraction) splatted bilinearly, centred on its
                centroid. A linear kernel (length 5-31) is the simple option.
GoPro blur      Nah et al. (CVPR'17): the mean of n = 7-13 frames. Offline the
                frames are one image warped along a smooth sub-pixel
                trajectory (shift plus a small in-plane rotation, bilinear);
                the middle frame has the identity warp so the clean target is
                the input itself (GoPro's GT is the middle frame). Default:
                the plain mean, as in the benchmark ``blur`` folder;
                ``gamma=True`` averages in linear light (``blur_gamma``).
defocus         Disk PSF 1[x^2 + y^2 <= r^2], supersampled x4 so fractional
                radii are smooth; optional Gaussian sigma and noise.
Gaussian noise  y = x + n, n ~ N(0, (sigma/255)^2). Two conventions exist:
                Restormer's benchmark keeps float32 unclipped values;
                PromptIR clips to [0, 255] and casts to uint8. The function
                default is Restormer's (``clip=False``); the ``noise*`` tasks
                of :data:`DEGRADATIONS` use the PromptIR convention because
                the embedded dataset is stored as 8-bit PNG (see
                :data:`NOISE_CONVENTION`).
low light       L = beta * x^gamma (beta in [0.05, 0.5] with +-10 % per
                channel, gamma in [2, 3.5]); y = clip(L + N(0, a L + b^2)),
                a in [1e-3, 1e-2], b in [1e-3, 2e-2]; quantised to 8 bits.
bicubic x s     MATLAB ``imresize(modcrop(x, s), 1/s, 'bicubic')`` via
                :mod:`restore_lib.data.imresize`, clipped to [0, 1].
==============  ==============================================================

Task table (:data:`DEGRADATIONS`). Function defaults follow the recipes
above; the tasks fix parameters for images of about 320 px (the embedded
dataset), where the recipes' full-resolution blur sizes would be too large:

=============  ===============================================================
task           call
=============  ===============================================================
rain_light     ``rain_streaks(x, rng, heavy=False)``
rain_heavy     ``rain_streaks(x, rng, heavy=True)``
snow           ``snow(x, rng)``
motion_blur    ``motion_blur(x, rng, max_len=U(10, 30), exposure in {1/2, 1})``
gopro_blur     ``gopro_blur(x, rng, length=(4, 16))`` (plain mean)
defocus        ``defocus(x, rng, radius=(2, 6))``
noise15/25/50  ``gaussian_noise(x, rng, sigma, clip=True, quantize=True)``
lowlight       ``low_light(x, rng)``
sr_x4          ``bicubic_sr(x, factor=4)`` (deterministic; output is H/4 x W/4)
=============  ===============================================================
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy import ndimage, signal

from .imresize import bicubic_downsample

__all__ = [
    "as_rng", "line_kernel", "disk_kernel", "random_trajectory", "trajectory_kernel", "convolve_image",
    "rain_streaks", "snow", "motion_blur", "gopro_blur", "defocus", "gaussian_noise", "low_light",
    "bicubic_sr", "DEGRADATIONS", "TASKS", "DETERMINISTIC_TASKS", "TASK_SCALES", "NOISE_CONVENTION", "degrade",
    "UnknownTaskError",
]

#: what the ``noise*`` tasks store (recorded in the embedded dataset manifest)
NOISE_CONVENTION = ("function default: float32, unclipped (Restormer benchmark); "
                    "noise15/25/50 tasks: clipped to [0,1] and quantised to 8 bits (PromptIR)")

#: exposure fractions at which DeblurGAN renders a trajectory PSF
EXPOSURES = (0.01, 0.1, 0.5, 1.0)


class UnknownTaskError(KeyError):
    """A task name that is not in :data:`DEGRADATIONS`."""

    def __str__(self):  # KeyError would quote the whole message
        return str(self.args[0])


# --------------------------------------------------------------------- helpers
def as_rng(seed) -> np.random.Generator:
    """A Generator from a Generator (returned as is), an int or a SeedSequence."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (int, np.integer, np.random.SeedSequence)) and not isinstance(seed, bool):
        return np.random.default_rng(seed)
    raise TypeError(f"rng must be a numpy Generator, an int seed or a SeedSequence; got {type(seed).__name__}")


def _check(img: np.ndarray, fn: str) -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{fn}: expected an (H, W, 3) numpy image; got "
                         f"{getattr(img, 'shape', type(img).__name__)}")
    if not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"{fn}: expected a float image in [0, 1]; got dtype {img.dtype}")
    return img.astype(np.float32, copy=False)


def _uniform(rng: np.random.Generator, value) -> float:
    """A number, or a draw from U(lo, hi) when given a (lo, hi) pair."""
    if isinstance(value, (tuple, list)):
        lo, hi = value
        return float(rng.uniform(lo, hi))
    return float(value)


def _splat(points_yx: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Bilinearly splat points (coordinates relative to the centre) onto an
    odd ``size`` x ``size`` canvas: each point spreads its weight over its four
    neighbouring pixels in proportion to the overlap."""
    c = size // 2
    y, x = points_yx[:, 0] + c, points_yx[:, 1] + c
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    fy, fx = y - y0, x - x0
    k = np.zeros((size, size), dtype=np.float64)
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                      (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        np.add.at(k, (y0 + dy, x0 + dx), w * weights)
    return k


def _kernel_from_points(points_yx: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Normalised kernel of splatted points on the smallest odd square canvas."""
    if weights is None:
        weights = np.ones(len(points_yx))
    half = int(math.ceil(np.abs(points_yx).max(initial=0.0))) + 1
    k = _splat(points_yx, weights, 2 * half + 1)
    return k / k.sum()


def line_kernel(length: float, angle: float, samples_per_px: int = 4) -> np.ndarray:
    """Antialiased line segment of ``length`` px through the centre.

    ``angle`` in degrees, counter-clockwise from the +x axis (90 = vertical).
    Built by splatting points spaced 1/``samples_per_px`` px along the
    segment; the result is non-negative and sums to 1.
    """
    if not length > 0:
        raise ValueError(f"line_kernel: length must be > 0; got {length}")
    n = max(2, int(math.ceil(length * samples_per_px)) + 1)
    t = np.linspace(-0.5, 0.5, n) * length
    th = math.radians(angle)
    pts = np.stack([-t * math.sin(th), t * math.cos(th)], axis=1)  # image y points down
    return _kernel_from_points(pts)


def disk_kernel(radius: float, supersample: int = 4) -> np.ndarray:
    """Uniform disk ``1[x^2 + y^2 <= r^2]`` averaged over ``supersample``^2
    sub-pixels per pixel (smooth for fractional radii), normalised to sum 1."""
    if not radius > 0:
        raise ValueError(f"disk_kernel: radius must be > 0; got {radius}")
    half = int(math.ceil(radius))
    s = supersample
    # sub-pixel centres of pixel p lie at p + (j + 0.5)/s - 0.5
    sub = (np.arange((2 * half + 1) * s) + 0.5) / s - 0.5 - half
    inside = (sub[:, None] ** 2 + sub[None, :] ** 2) <= radius ** 2
    k = inside.reshape(2 * half + 1, s, 2 * half + 1, s).mean(axis=(1, 3))
    return k / k.sum()


def convolve_image(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2-D convolution of each channel with an odd-sized kernel, symmetric
    (edge-repeating) padding, output the size of the input (float32)."""
    kh, kw = kernel.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"convolve_image: kernel size must be odd; got {kernel.shape}")
    ph, pw = kh // 2, kw // 2
    padded = np.pad(img.astype(np.float64), ((ph, ph), (pw, pw), (0, 0)), mode="symmetric")
    out = signal.fftconvolve(padded, kernel[:, :, None], mode="valid", axes=(0, 1))
    return out.astype(np.float32)


# ------------------------------------------------------------------------ rain
def _rain_layer(shape: tuple[int, int], rng: np.random.Generator, density=(0.005, 0.02),
                blur_sigma=(0.5, 1.0), length=(15, 40), angle=(-30, 30), amplitude=(0.6, 1.0)) -> np.ndarray:
    """One streak layer S in [0, a], shape (H, W)."""
    rho, sigma = _uniform(rng, density), _uniform(rng, blur_sigma)
    k = line_kernel(_uniform(rng, length), 90.0 + _uniform(rng, angle))
    a = _uniform(rng, amplitude)
    p = k.shape[0] // 2  # render on a padded canvas so streaks enter from outside
    h, w = shape[0] + 2 * p, shape[1] + 2 * p
    drops = (rng.random((h, w)) < rho) * rng.uniform(0.5, 1.0, size=(h, w))
    drops = ndimage.gaussian_filter(drops, sigma, mode="constant")
    s = np.clip(signal.fftconvolve(drops, k, mode="valid"), 0.0, None)
    peak = s.max()
    return s * (a / peak) if peak > 0 else s


def rain_streaks(img: np.ndarray, rng, heavy: bool = False, layers=(3, 5), veil_alpha=(0.8, 0.95),
                 veil_light=(0.8, 1.0)) -> np.ndarray:
    """Rain streaks (light: one layer; heavy: 3-5 layers plus a veil)."""
    x = _check(img, "rain_streaks").astype(np.float64)
    rng = as_rng(rng)
    n = int(rng.integers(layers[0], layers[1] + 1)) if heavy else 1
    out = x
    for _ in range(n):
        s = _rain_layer(x.shape[:2], rng)[:, :, None]
        out = 1.0 - (1.0 - out) * (1.0 - s)  # screen blend
    if heavy:
        alpha, light = _uniform(rng, veil_alpha), _uniform(rng, veil_light)
        out = alpha * out + (1.0 - alpha) * light
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------ snow
def _flake_blur(flakes: np.ndarray, sigma: float, k: np.ndarray | None) -> np.ndarray:
    f = ndimage.gaussian_filter(flakes, sigma, mode="constant")
    return np.clip(signal.fftconvolve(f, k, mode="same"), 0.0, None) if k is not None else f


def snow(img: np.ndarray, rng, densities=(2e-3, 8e-4, 2e-4), radii=(1.0, 2.0, 3.5), opacities=(0.6, 0.8, 1.0),
         motion: bool = True, motion_length=(3, 15), snow_colour=(0.9, 1.0), transmission=(0.8, 0.95),
         airlight=(0.8, 1.0)) -> np.ndarray:
    """Multi-scale snow flakes composited over the image, plus a veil."""
    x = _check(img, "snow").astype(np.float64)
    rng = as_rng(rng)
    h, w = x.shape[:2]
    k = None
    if motion:  # all flakes fall along one direction (within 30 deg of vertical)
        k = line_kernel(_uniform(rng, motion_length), 90.0 + rng.uniform(-30, 30))
    z = np.zeros((h, w))
    for rho, sigma, op in zip(densities, radii, opacities):
        # render on a padded canvas so flakes can enter from outside the frame
        p = int(math.ceil(4 * sigma)) + (k.shape[0] // 2 if k is not None else 0)
        flakes = (rng.random((h + 2 * p, w + 2 * p)) < rho).astype(np.float64)
        f = _flake_blur(flakes, sigma, k)
        delta = np.zeros((2 * p + 1, 2 * p + 1))
        delta[p, p] = 1.0
        f = f[p:p + h, p:p + w] / _flake_blur(delta, sigma, k).max()  # isolated flake peaks at 1
        z = np.maximum(z, np.clip(1.6 * f, 0.0, 1.0) * op)
    c, t, a = _uniform(rng, snow_colour), _uniform(rng, transmission), _uniform(rng, airlight)
    z = z[:, :, None]
    out = (x * (1.0 - z) + c * z) * t + a * (1.0 - t)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------- motion blur
def random_trajectory(rng, iters: int = 2000, max_len: float = 60.0, expl: float = 0.005) -> np.ndarray:
    """Random camera-shake trajectory (Boracchi & Foi 2012, DeblurGAN's model).

    Positions x_t (complex, x = real, y = imag, px) with x_0 = 0. Every step
    has length ``max_len / (iters - 1)``; the velocity v is perturbed by

        dv = impulse + expl * (g * (n1 + i n2) - c * x_t) * max_len / (iters - 1)

    with n1, n2 ~ N(0, 1), Gaussian shake g ~ 10 U, centripetal pull
    c ~ 0.7 U, and, with probability ``0.2 U * expl`` per step, an impulse
    ``2 v exp(i (pi + U - 0.5))`` that roughly reverses the motion.
    """
    rng = as_rng(rng)
    centripetal = 0.7 * rng.random()
    p_big = 0.2 * rng.random()
    shake = 10.0 * rng.random()
    phi0 = rng.uniform(0.0, 2.0 * math.pi)
    step = max_len / (iters - 1)
    u_big = rng.random(iters - 1)
    u_dir = rng.random(iters - 1)
    noise = rng.standard_normal((iters - 1, 2))
    v = complex(math.cos(phi0), math.sin(phi0)) * (expl if expl > 0 else step)
    x = np.zeros(iters, dtype=np.complex128)
    pos = 0j
    for t in range(iters - 1):
        impulse = 2.0 * v * complex(math.cos(math.pi + u_dir[t] - 0.5), math.sin(math.pi + u_dir[t] - 0.5)) \
            if u_big[t] < p_big * expl else 0j
        v = v + impulse + expl * (shake * complex(noise[t, 0], noise[t, 1]) - centripetal * pos) * step
        v = v / abs(v) * step
        pos = pos + v
        x[t + 1] = pos
    return x


def trajectory_kernel(traj: np.ndarray, exposure: float = 1.0) -> np.ndarray:
    """PSF of the first ``exposure`` fraction of a trajectory: every sample
    splatted bilinearly with equal weight, centred on their centroid (so the
    blur does not shift the image), normalised to sum 1."""
    if not 0 < exposure <= 1:
        raise ValueError(f"trajectory_kernel: exposure must be in (0, 1]; got {exposure}")
    n = max(2, int(round(exposure * len(traj))))
    pts = traj[:n]
    pts = pts - pts.mean()
    return _kernel_from_points(np.stack([pts.imag, pts.real], axis=1))


def motion_blur(img: np.ndarray, rng, kind: str = "trajectory", max_len=60.0, expl: float = 0.005,
                iters: int = 2000, exposure=None, length=(5, 31)) -> tuple[np.ndarray, np.ndarray]:
    """Uniform motion blur. Returns ``(blurred, kernel)``.

    ``kind="trajectory"``: random camera trajectory of total length
    ``max_len`` (number or (lo, hi)), PSF at ``exposure`` (number, or None for
    a random choice among :data:`EXPOSURES`, or a tuple of choices).
    ``kind="linear"``: a straight line kernel of ``length`` px (number or
    (lo, hi)) at a uniformly random angle.
    """
    x = _check(img, "motion_blur")
    rng = as_rng(rng)
    if kind == "trajectory":
        traj = random_trajectory(rng, iters=iters, max_len=_uniform(rng, max_len), expl=expl)
        choices = EXPOSURES if exposure is None else exposure
        exp_ = float(rng.choice(choices)) if isinstance(choices, (tuple, list)) else float(choices)
        k = trajectory_kernel(traj, exp_)
    elif kind == "linear":
        k = line_kernel(_uniform(rng, length), rng.uniform(0.0, 180.0))
    else:
        raise ValueError(f"motion_blur: kind must be 'trajectory' or 'linear'; got {kind!r}")
    return np.clip(convolve_image(x, k), 0.0, 1.0), k


def _fold(i: np.ndarray, n: int) -> np.ndarray:
    """Indices mirrored into [0, n) with the edge repeated (symmetric padding)."""
    m = np.mod(i, 2 * n)
    return np.where(m < n, m, 2 * n - 1 - m)


def _warp_bilinear(img: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """``img`` sampled at float coordinates (yy, xx) by bilinear interpolation,
    symmetric edges (like ``scipy.ndimage.map_coordinates(order=1,
    mode='reflect')``, for all channels at once)."""
    h, w = img.shape[:2]
    y0, x0 = np.floor(yy), np.floor(xx)
    fy, fx = (yy - y0)[:, :, None], (xx - x0)[:, :, None]
    y0, x0 = y0.astype(np.int64), x0.astype(np.int64)
    ya, yb = _fold(y0, h), _fold(y0 + 1, h)
    xa, xb = _fold(x0, w), _fold(x0 + 1, w)
    top = img[ya, xa] * (1 - fx) + img[ya, xb] * fx
    bottom = img[yb, xa] * (1 - fx) + img[yb, xb] * fx
    return top * (1 - fy) + bottom * fy


def gopro_blur(img: np.ndarray, rng, n_frames=None, length=(5, 25), curvature: float = 0.3,
               rotation=(-1.0, 1.0), gamma: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """GoPro-style blur: the mean of ``n_frames`` warped copies of the image.

    Frame i (time t_i in [-1/2, 1/2], evenly spaced) samples the image at
    ``R(rho t_i) (o - centre) + centre + p(t_i)`` with ``p(t) = v t + a t^2``,
    |v| = ``length`` px (total path), |a| = ``curvature`` * |v|, total
    rotation rho degrees from ``rotation``; bilinear, symmetric edges. The
    middle frame (t = 0) is the identity, so the clean target is ``img``.
    ``n_frames``: odd int, or None for a random odd number in 7-13.
    ``gamma=True`` averages in linear light: ``mean(f^2.2)^(1/2.2)``.

    Returns ``(blurred, kernel)``; the kernel is the equivalent PSF at the
    image centre (exact everywhere when the rotation is 0).
    """
    x = _check(img, "gopro_blur").astype(np.float64)
    rng = as_rng(rng)
    n = int(rng.choice([7, 9, 11, 13])) if n_frames is None else int(n_frames)
    if n < 1 or n % 2 == 0:
        raise ValueError(f"gopro_blur: n_frames must be odd so a middle frame exists; got {n}")
    phi = rng.uniform(0.0, 2.0 * math.pi)
    speed = _uniform(rng, length)
    vel = speed * np.array([math.sin(phi), math.cos(phi)])
    acc = curvature * speed * rng.standard_normal(2) / math.sqrt(2.0)
    rho = math.radians(_uniform(rng, rotation))
    t = (np.arange(n) - n // 2) / max(n - 1, 1)  # exactly 0 for the middle frame
    shifts = vel[None, :] * t[:, None] + acc[None, :] * (t[:, None] ** 2)
    centre = (np.array(x.shape[:2], dtype=np.float64) - 1.0) / 2.0
    lin = x ** 2.2 if gamma else x
    oy, ox = np.mgrid[0:x.shape[0], 0:x.shape[1]].astype(np.float64)
    oy, ox = oy - centre[0], ox - centre[1]
    acc_img = np.zeros_like(lin)
    for ti, (sy, sx) in zip(t, shifts):
        if ti == 0.0:
            acc_img += lin
            continue
        c, s = math.cos(rho * ti), math.sin(rho * ti)
        acc_img += _warp_bilinear(lin, c * oy - s * ox + centre[0] + sy, s * oy + c * ox + centre[1] + sx)
    out = acc_img / n
    if gamma:
        out = np.clip(out, 0.0, None) ** (1.0 / 2.2)
    # frame i reads img(o + p_i): a PSF with mass 1/n at -p_i
    kernel = _kernel_from_points(-shifts)
    return np.clip(out, 0.0, 1.0).astype(np.float32), kernel


def defocus(img: np.ndarray, rng, radius=(2.0, 10.0), gaussian_sigma: float = 0.0,
            noise_sigma: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Defocus blur with a supersampled disk PSF of radius ``radius`` px
    (number or (lo, hi)); optionally a Gaussian of ``gaussian_sigma`` px
    folded into the PSF and Gaussian noise of ``noise_sigma`` (in 0-255
    units, clipped). Returns ``(blurred, kernel)``."""
    x = _check(img, "defocus")
    rng = as_rng(rng)
    k = disk_kernel(_uniform(rng, radius))
    if gaussian_sigma > 0:
        pad = int(math.ceil(3 * gaussian_sigma))
        k = ndimage.gaussian_filter(np.pad(k, pad), gaussian_sigma, mode="constant")
        k = k / k.sum()
    out = convolve_image(x, k)
    if noise_sigma > 0:
        out = out + rng.standard_normal(out.shape).astype(np.float32) * np.float32(noise_sigma / 255.0)
    return np.clip(out, 0.0, 1.0), k


# ----------------------------------------------------------------- noise, dark
def gaussian_noise(img: np.ndarray, rng, sigma: float = 25.0, clip: bool = False,
                   quantize: bool = False) -> np.ndarray:
    """Additive white Gaussian noise of std ``sigma``/255.

    ``clip=False`` (default): float32, values may leave [0, 1] (Restormer's
    benchmark convention). ``clip=True, quantize=True``: clipped and rounded
    to 8-bit levels (PromptIR's convention; what an 8-bit PNG stores).
    """
    x = _check(img, "gaussian_noise")
    rng = as_rng(rng)
    y = x + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(sigma / 255.0)
    if clip:
        y = np.clip(y, 0.0, 1.0)
    if quantize:
        if not clip:
            raise ValueError("gaussian_noise: quantize=True needs clip=True (8-bit levels are in [0, 255])")
        y = np.round(y * 255.0) / 255.0
    return y.astype(np.float32)


def low_light(img: np.ndarray, rng, beta=(0.05, 0.5), gamma=(2.0, 3.5), shot=(1e-3, 1e-2), read=(1e-3, 2e-2),
              channel_jitter: float = 0.1) -> np.ndarray:
    """Synthetic low light: ``beta * x^gamma`` (per-channel beta within
    +-``channel_jitter``), Poisson-Gaussian noise of variance
    ``shot * L + read^2`` (heteroscedastic Gaussian approximation), clipped
    and quantised to 8 bits."""
    x = _check(img, "low_light").astype(np.float64)
    rng = as_rng(rng)
    b, g = _uniform(rng, beta), _uniform(rng, gamma)
    a, r = _uniform(rng, shot), _uniform(rng, read)
    betas = b * (1.0 + rng.uniform(-channel_jitter, channel_jitter, size=3))
    dark = betas[None, None, :] * x ** g
    y = dark + np.sqrt(a * dark + r * r) * rng.standard_normal(x.shape)
    return (np.round(np.clip(y, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def bicubic_sr(img: np.ndarray, rng=None, factor: int = 4) -> np.ndarray:
    """Low-resolution input for SR: MATLAB bicubic of the mod-cropped image,
    clipped to [0, 1]. Deterministic; ``rng`` is accepted and unused."""
    x = _check(img, "bicubic_sr")
    return np.clip(bicubic_downsample(x, factor), 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------- tasks
def _rain_light(x, rng):
    return rain_streaks(x, rng, heavy=False)


def _rain_heavy(x, rng):
    return rain_streaks(x, rng, heavy=True)


def _snow(x, rng):
    return snow(x, rng)


def _motion_blur(x, rng):
    return motion_blur(x, rng, kind="trajectory", max_len=(10.0, 30.0), exposure=(0.5, 1.0))[0]


def _gopro_blur(x, rng):
    return gopro_blur(x, rng, length=(4.0, 16.0))[0]


def _defocus(x, rng):
    return defocus(x, rng, radius=(2.0, 6.0))[0]


def _noise(sigma):
    def fn(x, rng):
        return gaussian_noise(x, rng, sigma=sigma, clip=True, quantize=True)
    fn.__name__ = f"_noise{sigma}"
    return fn


def _lowlight(x, rng):
    return low_light(x, rng)


def _sr_x4(x, rng):
    return bicubic_sr(x, rng, factor=4)


#: task name -> ``fn(img, rng) -> degraded image`` (parameters in the module docstring)
DEGRADATIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "rain_light": _rain_light,
    "rain_heavy": _rain_heavy,
    "snow": _snow,
    "motion_blur": _motion_blur,
    "gopro_blur": _gopro_blur,
    "defocus": _defocus,
    "noise15": _noise(15),
    "noise25": _noise(25),
    "noise50": _noise(50),
    "lowlight": _lowlight,
    "sr_x4": _sr_x4,
}
TASKS = tuple(DEGRADATIONS)
#: tasks whose output does not depend on the seed
DETERMINISTIC_TASKS = frozenset({"sr_x4"})
#: clean/degraded size ratio of the tasks that change the size (every other task: 1)
TASK_SCALES = {"sr_x4": 4}


def degrade(task: str, img: np.ndarray, seed) -> np.ndarray:
    """Apply the task's degradation with a seed (int, SeedSequence or Generator)."""
    if task not in DEGRADATIONS:
        raise UnknownTaskError(f"unknown degradation task {task!r}; known tasks: {', '.join(TASKS)}")
    return DEGRADATIONS[task](img, as_rng(seed))
