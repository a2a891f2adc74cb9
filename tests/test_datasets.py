"""Paired datasets (restore_lib.data.datasets): pairing, crops, determinism, bad input."""
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from restore_lib.data.augment import PairedAugment
from restore_lib.data.datasets import (HW4_NAME_MAP, DatasetError, EmptyDatasetError, GoProDataset, MemoryPairs,
                                       MissingPairError, NpzFormatError, NpzPatchDataset, PairedFolderDataset,
                                       PairSizeError, PatchSizeError, hw4_clean_name, save_npz_patches)
from restore_lib.data.io import ImageReadError


def _rand_u8(rng, h, w, c=3):
    return rng.integers(0, 256, (h, w, c) if c else (h, w), dtype=np.uint8)


def _save(path: Path, arr: np.ndarray, mode=None) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)
    return arr


def _png16(path: Path, arr: np.ndarray) -> None:
    """Minimal 16-bit PNG encoder (independent of Pillow): gray, gray+alpha, RGB or RGBA (H,W,1|2|3|4)."""
    h, w, c = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture
def folder(tmp_path):
    """<tmp>/train/{degraded,clean} with 3 pairs of 24x32 images (natural order test names)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "train"
    data = {}
    for name in ("img-10.png", "img-2.png", "img-1.png"):
        lq = _save(root / "degraded" / name, _rand_u8(rng, 24, 32))
        gt = _save(root / "clean" / name, _rand_u8(rng, 24, 32))
        data[name] = (lq, gt)
    return root, data


def _as_u8(t):
    return np.round(t.permute(1, 2, 0).numpy() * 255).astype(np.uint8)


# --------------------------------------------------------------------------- pairing

@pytest.mark.parametrize("in_memory", [True, False])
def test_folder_items_match_files(folder, in_memory):
    root, data = folder
    ds = PairedFolderDataset(root, in_memory=in_memory)
    assert len(ds) == 3
    assert [ds[i]["name"] for i in range(3)] == ["img-1.png", "img-2.png", "img-10.png"]
    item = ds[1]
    assert item["lq"].dtype == torch.float32 and item["lq"].shape == (3, 24, 32)
    lq, gt = data["img-2.png"]
    torch.testing.assert_close(item["lq"], torch.from_numpy(lq).permute(2, 0, 1).float() / 255, atol=0, rtol=0)
    assert np.array_equal(_as_u8(item["gt"]), gt)
    assert ds[-1]["name"] == "img-10.png"
    with pytest.raises(IndexError):
        ds[3]


def test_files_selection(folder):
    root, _ = folder
    ds = PairedFolderDataset(root, files=["img-10.png"])
    assert len(ds) == 1 and ds[0]["name"] == "img-10.png"
    with pytest.raises(MissingPairError, match="img-7.png"):
        PairedFolderDataset(root, files=["img-7.png"])


def test_hw4_name_map(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "hw4" / "train"
    for kind in ("rain", "snow"):
        for n in (1, 2):
            _save(root / "degraded" / f"{kind}-{n}.png", _rand_u8(rng, 8, 8))
            _save(root / "clean" / f"{kind}_clean-{n}.png", _rand_u8(rng, 8, 8))
    ds = PairedFolderDataset(root, name_map=HW4_NAME_MAP)
    assert [ds[i]["name"] for i in range(4)] == ["rain-1.png", "rain-2.png", "snow-1.png", "snow-2.png"]
    clean = np.asarray(Image.open(root / "clean" / "snow_clean-2.png"))
    assert np.array_equal(_as_u8(ds[3]["gt"]), clean)
    assert hw4_clean_name("rain-17.png") == "rain_clean-17.png"
    with pytest.raises(MissingPairError, match="fog-1.png"):
        hw4_clean_name("fog-1.png")
    # a dict works too (missing keys keep their name)
    ds2 = PairedFolderDataset(root, name_map={f"{k}-{n}.png": f"{k}_clean-{n}.png"
                                              for k in ("rain", "snow") for n in (1, 2)})
    assert torch.equal(ds2[3]["gt"], ds[3]["gt"])


def test_missing_pairs_name_files(folder):
    root, _ = folder
    os.remove(root / "clean" / "img-2.png")
    with pytest.raises(MissingPairError) as e:
        PairedFolderDataset(root)
    assert "img-2.png" in str(e.value) and str(root / "degraded") in str(e.value)
    assert isinstance(e.value, ValueError)
    # the reverse: a clean image without its degraded image
    _save(root / "clean" / "img-2.png", np.zeros((24, 32, 3), np.uint8))
    _save(root / "clean" / "extra.png", np.zeros((24, 32, 3), np.uint8))
    with pytest.raises(MissingPairError, match=r"clean image\(s\) without a degraded pair.*extra\.png"):
        PairedFolderDataset(root)


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "degraded").mkdir()
    (tmp_path / "clean").mkdir()
    (tmp_path / "degraded" / "notes.txt").write_text("not an image")
    with pytest.raises(EmptyDatasetError, match="no images"):
        PairedFolderDataset(tmp_path)
    with pytest.raises(EmptyDatasetError, match="folder not found"):
        PairedFolderDataset(tmp_path, degraded_dir="input")


# --------------------------------------------------------------------------- sizes and patches

def test_size_mismatch(folder):
    root, _ = folder
    _save(root / "clean" / "img-2.png", np.zeros((24, 30, 3), np.uint8))
    for in_memory in (True, False):
        with pytest.raises(PairSizeError, match=r"img-2\.png.*24x32.*24x30"):
            PairedFolderDataset(root, in_memory=in_memory)


def test_sr_scale_and_modcrop(tmp_path):
    rng = np.random.default_rng(2)
    lq = _save(tmp_path / "degraded" / "a.png", _rand_u8(rng, 8, 6))
    gt = _save(tmp_path / "clean" / "a.png", _rand_u8(rng, 34, 27))   # not 4 x (8, 6) = (32, 24)
    with pytest.raises(PairSizeError, match="modcrop=True"):
        PairedFolderDataset(tmp_path, scale=4)
    item = PairedFolderDataset(tmp_path, scale=4, modcrop=True)[0]
    assert item["lq"].shape == (3, 8, 6) and item["gt"].shape == (3, 32, 24)
    assert np.array_equal(_as_u8(item["gt"]), gt[:32, :24])
    assert np.array_equal(_as_u8(item["lq"]), lq)
    _save(tmp_path / "clean" / "a.png", _rand_u8(rng, 40, 24))          # too far off even for mod-crop
    with pytest.raises(PairSizeError, match="expected clean 32x24"):
        PairedFolderDataset(tmp_path, scale=4, modcrop=True)


def test_patch_size_errors(folder):
    root, _ = folder
    with pytest.raises(PatchSizeError, match=r"img-1\.png.*larger"):
        PairedFolderDataset(root, patch_size=28)
    with pytest.raises(PatchSizeError, match="multiple of scale"):
        MemoryPairs([("a", np.zeros((8, 8, 3), np.uint8), np.zeros((16, 16, 3), np.uint8))], scale=2, patch_size=7)


def test_aligned_random_crops():
    rng = np.random.default_rng(3)
    s = 2
    lq = _rand_u8(rng, 30, 40)
    gt = lq.repeat(s, axis=0).repeat(s, axis=1)          # gt = nearest-upsample(lq)
    ds = MemoryPairs([("x", lq, gt)], scale=s, patch_size=16, seed=5)
    positions = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        item = ds[0]
        assert item["lq"].shape == (3, 8, 8) and item["gt"].shape == (3, 16, 16)
        assert torch.equal(item["gt"][:, ::s, ::s], item["lq"])
        crop = _as_u8(item["lq"])
        hits = [(y, x) for y in range(23) for x in range(33) if np.array_equal(lq[y:y + 8, x:x + 8], crop)]
        assert len(hits) == 1                            # a real window of the image
        positions.add(hits[0])
    assert len(positions) >= 4


# --------------------------------------------------------------------------- determinism

def _items_equal(a, b):
    return torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"]) and a["name"] == b["name"]


def test_deterministic_crops_and_augment(folder):
    root, _ = folder
    kw = dict(patch_size=16, augment=PairedAugment.report_a(), seed=7)
    ds1, ds2 = PairedFolderDataset(root, **kw), PairedFolderDataset(root, in_memory=False, **kw)
    torch.manual_seed(0)
    np.random.seed(0)
    a = ds1[2]
    torch.manual_seed(123)                                # global RNG state plays no part
    np.random.seed(123)
    _ = ds1[0]                                            # nor does the access order
    assert _items_equal(a, ds1[2]) and _items_equal(a, ds2[2])
    ds1.set_epoch(1)
    assert not torch.equal(a["lq"], ds1[2]["lq"])
    ds1.set_epoch(0)
    assert _items_equal(a, ds1[2])
    other_seed = PairedFolderDataset(root, patch_size=16, augment=PairedAugment.report_a(), seed=8)
    assert not torch.equal(a["lq"], other_seed[2]["lq"])


def test_worker_count_does_not_change_batches(folder):
    root, _ = folder
    ds = PairedFolderDataset(root, patch_size=8, augment=PairedAugment.report_b(), seed=1)
    ds.set_epoch(3)
    batches = []
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers)
        batches.append([b["lq"] for b in loader])
    assert all(torch.equal(x, y) for x, y in zip(*batches))


# --------------------------------------------------------------------------- bad files

def test_truncated_png(folder):
    root, _ = folder
    p = root / "degraded" / "img-2.png"
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(ImageReadError, match=r"img-2\.png.*corrupt"):
        PairedFolderDataset(root)
    ds = PairedFolderDataset(root, in_memory=False)       # header still parses: fails on access
    ds[0]
    with pytest.raises(ImageReadError, match=r"img-2\.png"):
        ds[1]


def test_grayscale_policy(tmp_path):
    rng = np.random.default_rng(4)
    g = _save(tmp_path / "degraded" / "a.png", _rand_u8(rng, 8, 8, c=0), mode="L")
    _save(tmp_path / "clean" / "a.png", _rand_u8(rng, 8, 8))
    item = PairedFolderDataset(tmp_path)[0]
    assert np.array_equal(_as_u8(item["lq"]), np.repeat(g[:, :, None], 3, axis=2))
    with pytest.raises(ImageReadError, match=r"a\.png.*grayscale"):
        PairedFolderDataset(tmp_path, gray="error")


def test_rgba_policy(tmp_path):
    rng = np.random.default_rng(5)
    rgba = _rand_u8(rng, 8, 8, c=4)
    rgba[..., 3] = 255
    _save(tmp_path / "degraded" / "a.png", rgba, mode="RGBA")
    _save(tmp_path / "clean" / "a.png", _rand_u8(rng, 8, 8))
    assert np.array_equal(_as_u8(PairedFolderDataset(tmp_path)[0]["lq"]), rgba[..., :3])   # opaque: fine
    rgba[2, 3, 3] = 10
    _save(tmp_path / "degraded" / "a.png", rgba, mode="RGBA")
    with pytest.raises(ImageReadError, match=r"a\.png.*transparent"):
        PairedFolderDataset(tmp_path)


def test_16bit_grayscale_png_keeps_precision(tmp_path):
    rng = np.random.default_rng(6)
    g16 = rng.integers(0, 65536, (8, 8, 1), dtype=np.uint16)
    (tmp_path / "degraded").mkdir()
    _png16(tmp_path / "degraded" / "a.png", g16)
    _save(tmp_path / "clean" / "a.png", _rand_u8(rng, 8, 8))
    lq = PairedFolderDataset(tmp_path)[0]["lq"].double().numpy()
    np.testing.assert_allclose(lq, np.repeat(g16[:, :, 0][None] / 65535.0, 3, axis=0), atol=1e-7)
    assert np.abs(lq[0] - np.round(lq[0] * 255) / 255).max() > 1e-4     # not quantised to 8 bits


def test_16bit_rgb_png_is_rejected_with_a_clear_message(tmp_path):
    # Pillow would silently decode a 16-bit RGB PNG as 8-bit RGB; read_image refuses instead
    rng = np.random.default_rng(7)
    rgb16 = rng.integers(0, 65536, (8, 8, 3), dtype=np.uint16)
    (tmp_path / "degraded").mkdir()
    _png16(tmp_path / "degraded" / "a.png", rgb16)
    _save(tmp_path / "clean" / "a.png", _rand_u8(rng, 8, 8))
    with pytest.raises(ImageReadError, match=r"a\.png: 16-bit RGB PNG"):
        PairedFolderDataset(tmp_path)[0]


def test_16bit_rgb_tiff_keeps_precision(tmp_path):
    import tifffile

    rng = np.random.default_rng(7)
    rgb16 = rng.integers(0, 65536, (8, 8, 3), dtype=np.uint16)
    (tmp_path / "degraded").mkdir()
    tifffile.imwrite(tmp_path / "degraded" / "a.tif", rgb16, photometric="rgb")
    _save(tmp_path / "clean" / "a.tif", _rand_u8(rng, 8, 8))
    lq = PairedFolderDataset(tmp_path)[0]["lq"].permute(1, 2, 0).double().numpy()
    np.testing.assert_allclose(lq, rgb16 / 65535.0, atol=1e-6)


def test_unsupported_channel_layout_is_named(tmp_path):
    import tifffile

    from restore_lib.data.io import read_image

    tifffile.imwrite(tmp_path / "five.tif", np.zeros((8, 8, 5), dtype=np.uint8), photometric="minisblack",
                     planarconfig="contig")
    with pytest.raises(ImageReadError, match=r"five\.tif: unsupported channel layout \(8, 8, 5\)"):
        read_image(tmp_path / "five.tif")


# --------------------------------------------------------------------------- GoPro layout

def test_gopro_layout(tmp_path):
    rng = np.random.default_rng(8)
    root = tmp_path / "GOPRO_Large"
    expect = {}
    for scene in ("GOPR0372_07_00", "GOPR0384_11_01"):
        for f in ("000001.png", "000002.png"):
            blur = _save(root / "test" / scene / "blur" / f, _rand_u8(rng, 12, 16))
            _save(root / "test" / scene / "blur_gamma" / f, _rand_u8(rng, 12, 16))
            _save(root / "test" / scene / "sharp" / f, _rand_u8(rng, 12, 16))
            expect[f"{scene}/{f}"] = blur
    ds = GoProDataset(root, split="test")
    assert [ds[i]["name"] for i in range(len(ds))] == list(expect)
    for i, (name, blur) in enumerate(expect.items()):
        assert np.array_equal(_as_u8(ds[i]["lq"]), blur)    # `blur`, never `blur_gamma`
    sub = GoProDataset(root, split="test", files=["GOPR0384_11_01/000002.png"], patch_size=8)
    assert len(sub) == 1 and sub[0]["gt"].shape == (3, 8, 8)
    with pytest.raises(EmptyDatasetError, match="train"):
        GoProDataset(root, split="train")
    os.remove(root / "test" / "GOPR0384_11_01" / "sharp" / "000001.png")
    with pytest.raises(MissingPairError, match="000001.png"):
        GoProDataset(root, split="test")


# --------------------------------------------------------------------------- npz patches

@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_npz_round_trip(tmp_path, dtype):
    rng = np.random.default_rng(9)
    lq = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    gt = rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    if dtype == np.float32:
        lq, gt = lq / np.float32(255), gt / np.float32(255)
    path = save_npz_patches(tmp_path / "p" / "train.npz", lq, gt)
    assert sorted(os.listdir(path.parent)) == ["train.npz"]          # no temp file left behind
    ds = NpzPatchDataset(path)
    assert len(ds) == 5 and ds.scale == 2 and ds[4]["name"] == "train_000004"
    ref = lq[3].astype(np.float32) / (255 if dtype == np.uint8 else 1)
    np.testing.assert_array_equal(ds[3]["lq"].permute(1, 2, 0).numpy(), ref)
    assert ds[3]["gt"].shape == (3, 16, 16)
    crops = NpzPatchDataset(path, patch_size=8, seed=1)
    assert crops[0]["lq"].shape == (3, 4, 4) and crops[0]["gt"].shape == (3, 8, 8)


def test_npz_format_errors(tmp_path):
    good_lq = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(NpzFormatError, match="looks like NCHW"):
        save_npz_patches(tmp_path / "a.npz", np.zeros((2, 3, 8, 8), np.uint8), np.zeros((2, 3, 8, 8), np.uint8))
    with pytest.raises(NpzFormatError, match="2 'lq' patches but 3"):
        save_npz_patches(tmp_path / "a.npz", good_lq, np.zeros((3, 8, 8, 3), np.uint8))
    with pytest.raises(NpzFormatError, match="dtype int32"):
        save_npz_patches(tmp_path / "a.npz", good_lq.astype(np.int32), good_lq.astype(np.int32))
    with pytest.raises(NpzFormatError, match=r"in \[0, 1\]"):
        save_npz_patches(tmp_path / "a.npz", good_lq + 2.0, good_lq + 2.0)
    with pytest.raises(NpzFormatError, match="integer multiple"):
        save_npz_patches(tmp_path / "a.npz", good_lq, np.zeros((2, 12, 8, 3), np.uint8))
    assert not (tmp_path / "a.npz").exists()

    np.savez(tmp_path / "nogt.npz", lq=good_lq)
    with pytest.raises(NpzFormatError, match=r"nogt\.npz.*'gt'"):
        NpzPatchDataset(tmp_path / "nogt.npz")
    np.savez(tmp_path / "nchw.npz", lq=np.zeros((2, 3, 8, 8), np.uint8), gt=np.zeros((2, 3, 8, 8), np.uint8))
    with pytest.raises(NpzFormatError, match=r"nchw\.npz.*NCHW"):
        NpzPatchDataset(tmp_path / "nchw.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 this is not a zip file")
    with pytest.raises(NpzFormatError, match=r"junk\.npz.*corrupt"):
        NpzPatchDataset(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", good_lq)
    with pytest.raises(NpzFormatError, match=r"single\.npy.*not an \.npz"):
        NpzPatchDataset(tmp_path / "single.npy")
    with pytest.raises(NpzFormatError, match="file not found"):
        NpzPatchDataset(tmp_path / "missing.npz")


# --------------------------------------------------------------------------- in-memory pairs

def test_memory_pairs(tmp_path):
    rng = np.random.default_rng(10)
    lq, gt = _rand_u8(rng, 12, 12), _rand_u8(rng, 12, 12)
    gt_t = torch.from_numpy(gt).permute(2, 0, 1).float() / 255        # tensors are (3, H, W)
    ds = MemoryPairs([("a", lq, gt_t), ("b", lq / 255.0, gt)], patch_size=8, augment=PairedAugment.report_b())
    assert len(ds) == 2 and ds[1]["name"] == "b"
    full = MemoryPairs([("a", lq, gt_t)])
    assert np.array_equal(_as_u8(full[0]["lq"]), lq) and torch.allclose(full[0]["gt"], gt_t)
    with pytest.raises(ValueError, match=r"bad \(lq\).*\(H, W, 3\)"):
        MemoryPairs([("bad", lq[..., :1], gt)])
    with pytest.raises(ValueError, match=r"neg \(gt\).*\[0, 1\]"):
        MemoryPairs([("neg", lq, gt - 300.0)])
    with pytest.raises(PairSizeError, match="odd"):
        MemoryPairs([("odd", lq, gt[:10])])
    with pytest.raises(EmptyDatasetError):
        MemoryPairs([])


# --------------------------------------------------------------------------- no silent pixel errors
def test_16bit_gray_alpha_png_is_rejected_not_truncated(tmp_path):
    from restore_lib.data.io import read_image

    la16 = np.random.default_rng(8).integers(0, 65536, (8, 8, 2), dtype=np.uint16)
    la16[..., 1] = 65535
    _png16(tmp_path / "la.png", la16)
    with pytest.raises(ImageReadError, match=r"la\.png: 16-bit gray\+alpha PNG"):
        read_image(tmp_path / "la.png")


@pytest.mark.parametrize("scale", [255.0, -1.0])
def test_float_tiff_outside_unit_range_is_refused_not_clipped(tmp_path, scale):
    import tifffile

    from restore_lib.data.io import read_image

    arr = (np.random.default_rng(9).random((8, 8, 3)) * scale).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", arr, photometric="rgb")
    with pytest.raises(ImageReadError, match=r"f\.tif: float image with values in .*expected \[0, 1\]"):
        read_image(tmp_path / "f.tif")
    tifffile.imwrite(tmp_path / "ok.tif", np.abs(arr / scale), photometric="rgb")   # in range: read exactly
    np.testing.assert_array_equal(read_image(tmp_path / "ok.tif"), np.abs(arr / scale))


def test_cmyk_images_are_refused(tmp_path):
    import tifffile

    from restore_lib.data.io import read_image

    Image.new("CMYK", (8, 8), (10, 20, 30, 0)).save(tmp_path / "c.jpg")
    with pytest.raises(ImageReadError, match=r"c\.jpg: CMYK image"):
        read_image(tmp_path / "c.jpg")
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((8, 8, 4), np.uint8), photometric="separated")
    with pytest.raises(ImageReadError, match=r"c\.tif: CMYK"):
        read_image(tmp_path / "c.tif")


def test_exif_orientation_is_refused_unless_the_stored_grid_is_asked_for(tmp_path):
    from restore_lib.data.io import read_image

    arr = _rand_u8(np.random.default_rng(10), 6, 10)
    exif = Image.Exif()
    exif[0x0112] = 6          # "rotate 90 degrees clockwise to display"
    Image.fromarray(arr).save(tmp_path / "r.png", exif=exif)
    with pytest.raises(ImageReadError, match=r"r\.png: EXIF orientation 6"):
        read_image(tmp_path / "r.png")
    stored = read_image(tmp_path / "r.png", orientation="stored")
    np.testing.assert_array_equal(np.round(stored * 255).astype(np.uint8), arr)


def test_decompression_bomb_names_the_file(tmp_path, monkeypatch):
    from restore_lib.data.io import read_image

    _save(tmp_path / "degraded" / "big.png", _rand_u8(np.random.default_rng(11), 40, 40))
    _save(tmp_path / "clean" / "big.png", _rand_u8(np.random.default_rng(12), 40, 40))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)      # 1600 pixels > 2 x the limit: a "bomb"
    with pytest.raises(ImageReadError, match=r"big\.png: too many pixels"):
        read_image(tmp_path / "degraded" / "big.png")
    with pytest.raises(ImageReadError, match=r"big\.png: too many pixels"):
        PairedFolderDataset(tmp_path)


@pytest.mark.parametrize("kind", ["broken", "loop"])
def test_bad_symlinks_in_a_dataset_are_named_not_dropped(folder, kind):
    root, _ = folder
    link = root / "degraded" / "img-3.png"
    if kind == "broken":
        link.symlink_to(root / "degraded" / "missing.png")
    else:
        link.symlink_to(link)
    with pytest.raises(DatasetError, match=r"img-3\.png: a broken or looping symbolic link"):
        PairedFolderDataset(root)
