"""data_scripts/: verified downloads, safe extraction and the preparation
scripts, all on local files (no network)."""
import hashlib
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SCRIPTS = Path(__file__).resolve().parent.parent / "data_scripts"
sys.path.insert(0, str(SCRIPTS))

import _download  # noqa: E402
from _download import HashRequired, UnsafeArchiveError, VerificationError, download, safe_extract  # noqa: E402


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------ download
@pytest.fixture()
def remote(tmp_path):
    """A local 'server' file reached through a file:// URL."""
    data = os.urandom(5000)
    src = tmp_path / "server" / "blob.bin"
    src.parent.mkdir()
    src.write_bytes(data)
    return src, src.as_uri(), data


def test_download_verifies_good_hash(tmp_path, remote):
    src, url, data = remote
    dest = download(url, tmp_path / "cache" / "blob.bin", _sha(data))
    assert dest.read_bytes() == data
    assert not dest.with_name("blob.bin.unverified").exists()
    src.write_bytes(b"changed on the server")  # a cache hit does not download again
    assert download(url, dest, _sha(data)).read_bytes() == data


def test_download_wrong_hash_raises_and_removes(tmp_path, remote):
    _, url, data = remote
    dest = tmp_path / "cache" / "blob.bin"
    with pytest.raises(VerificationError, match="mismatch.*removed"):
        download(url, dest, "0" * 64)
    assert not dest.exists() and not dest.with_name("blob.bin.unverified").exists()
    assert [p.name for p in dest.parent.iterdir()] == []  # no temp file left either


def test_cache_hit_with_wrong_hash_is_removed(tmp_path, remote):
    _, url, data = remote
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"corrupted earlier")
    with pytest.raises(VerificationError, match="cached"):
        download(url, dest, _sha(data))
    assert not dest.exists()


def test_unknown_hash_is_refused_then_accepted(tmp_path, remote, capsys):
    _, url, data = remote
    dest = tmp_path / "blob.bin"
    with pytest.raises(HashRequired) as e:
        download(url, dest)
    assert _sha(data) in str(e.value) and "--accept-hash" in str(e.value)
    assert not dest.exists()
    assert dest.with_name("blob.bin.unverified").exists()  # kept, so a rerun does not download again
    download(url, dest, accept_hash=True)
    assert dest.read_bytes() == data and _sha(data) in capsys.readouterr().out
    # the accepted hash is recorded and enforced on later runs
    assert download(url, dest) == dest
    dest.write_bytes(b"tampered")
    with pytest.raises(VerificationError):
        download(url, dest)


def test_verify_local_file_never_deletes(tmp_path):
    f = tmp_path / "user.zip"
    f.write_bytes(b"abc")
    with pytest.raises(VerificationError):
        _download.verify_file(f, "1" * 64)
    assert f.exists()
    assert _download.verify_file(f, _sha(b"abc")) == _sha(b"abc")
    with pytest.raises(HashRequired):
        _download.verify_file(f, None)


def test_hash_parsing(tmp_path):
    h = _sha(b"x")
    f = tmp_path / "sums.sha256"
    f.write_text(f"# comment\n{h}  DIV2K_train_HR.zip\n{h.upper()} *other.zip\n")
    assert _download.read_hash_file(f) == {"DIV2K_train_HR.zip": h, "other.zip": h}
    with pytest.raises(ValueError, match="not a 64-character"):
        _download.normalise_hash("abc")


# ------------------------------------------------------------------ archives
def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"data") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def test_good_tar_extracts(tmp_path):
    d = tarfile.TarInfo("set/sub")
    d.type = tarfile.DIRTYPE
    arc = _tar(tmp_path / "good.tar.gz", [(d, None), _file("set/sub/a.png", b"A"),
                                          _special("set/link.png", tarfile.SYMTYPE, "sub/a.png")])
    out = safe_extract(arc, tmp_path / "out")
    assert (out / "set/sub/a.png").read_bytes() == b"A"
    assert (out / "set/link.png").read_bytes() == b"A"


@pytest.mark.parametrize("member", [
    _file("/etc/evil"),
    _file("../evil"),
    _file("ok/../../evil"),
    _special("abs_link", tarfile.SYMTYPE, "/etc/passwd"),
    _special("rel_link", tarfile.SYMTYPE, "../../outside"),
    _special("sub/deep_link", tarfile.SYMTYPE, "../.."),
    _special("hard", tarfile.LNKTYPE, "../outside"),
    _special("hard_abs", tarfile.LNKTYPE, "/etc/passwd"),
    _special("dev", tarfile.CHRTYPE),
    _special("blk", tarfile.BLKTYPE),
    _special("fifo", tarfile.FIFOTYPE),
], ids=["abs", "dotdot", "nested_dotdot", "symlink_abs", "symlink_rel", "symlink_up", "hardlink_rel",
        "hardlink_abs", "chardev", "blockdev", "fifo"])
def test_malicious_tar_rejected_before_writing(tmp_path, member):
    arc = _tar(tmp_path / "bad.tar.gz", [_file("first.txt"), member])
    with pytest.raises(UnsafeArchiveError):
        safe_extract(arc, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing was written
    assert not (tmp_path / "evil").exists()


def test_write_through_symlink_rejected(tmp_path):
    arc = _tar(tmp_path / "bad.tar", [_special("x", tarfile.SYMTYPE, "."), _file("x/y.txt")])
    with pytest.raises(UnsafeArchiveError, match="through a symbolic link"):
        safe_extract(arc, tmp_path / "out")


def _zip(path: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for n in names:
            zf.writestr(zipfile.ZipInfo(n), b"z")
    return path


def test_good_zip_extracts(tmp_path):
    out = safe_extract(_zip(tmp_path / "g.zip", ["Set5/HR/a.png", "Set5/HR/b.png"]), tmp_path / "o")
    assert sorted(p.name for p in (out / "Set5/HR").iterdir()) == ["a.png", "b.png"]


@pytest.mark.parametrize("name", ["/abs.txt", "../up.txt", "a/../../up.txt", "..\\win.txt", "C:/win.txt"])
def test_malicious_zip_rejected(tmp_path, name):
    arc = _zip(tmp_path / "b.zip", ["fine.txt", name])
    with pytest.raises(UnsafeArchiveError):
        safe_extract(arc, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_zip_symlink_member_rejected(tmp_path):
    arc = tmp_path / "l.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        safe_extract(arc, tmp_path / "o")


def test_not_an_archive(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"not an archive at all")
    with pytest.raises(UnsafeArchiveError, match="neither a zip nor"):
        safe_extract(f, tmp_path / "o")


# ---------------------------------------------------------- preparation scripts
def _png(path: Path, h: int = 24, w: int = 36, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def test_hw4_check_and_convert(tmp_path, capsys):
    import prepare_hw4
    src = tmp_path / "hw4_realse_dataset"
    for kind in ("rain", "snow"):
        for n in (1, 2, 3):
            _png(src / "train/degraded" / f"{kind}-{n}.png", seed=n)
            _png(src / "train/clean" / f"{kind}_clean-{n}.png", seed=10 + n)
    for n in (0, 1):
        _png(src / "test/degraded" / f"{n}.png")
    # counts differ from the official release: refused unless --allow-partial
    with pytest.raises(prepare_hw4.PrepError, match="1600"):
        prepare_hw4.main(["--src", str(src)])
    out = tmp_path / "conv"
    assert prepare_hw4.main(["--src", str(src), "--allow-partial", "--out", str(out), "--val-ratio", "0.34"]) == 0
    names = lambda d: sorted(p.name for p in d.iterdir())  # noqa: E731
    assert names(out / "val/degraded") == names(out / "val/clean") and len(names(out / "val/degraded")) == 2
    assert len(names(out / "train/degraded")) == 4 and names(out / "test/degraded") == ["0.png", "1.png"]
    v = names(out / "val/degraded")[0]
    kind, n = v[:-4].split("-")
    assert (out / "val/clean" / v).read_bytes() == (src / "train/clean" / f"{kind}_clean-{n}.png").read_bytes()
    # a missing partner and a size mismatch are reported by name
    (src / "train/clean/snow_clean-2.png").unlink()
    _png(src / "train/clean/rain_clean-3.png", h=10)
    with pytest.raises(prepare_hw4.PrepError) as e:
        prepare_hw4.main(["--src", str(src), "--allow-partial"])
    assert "snow_clean-2.png is missing" in str(e.value) and "rain-3.png: size" in str(e.value)


def test_sr_benchmark_from_archive_makes_matlab_lr(tmp_path):
    import prepare_sr_benchmarks
    from restore_lib.data.imresize import bicubic_downsample, modcrop
    hr = tmp_path / "pack" / "Set5" / "original"
    for i, name in enumerate(["baby", "bird"]):
        _png(hr / f"{name}.png", h=50, w=63, seed=i)
    arc = tmp_path / "Set5.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        for p in hr.iterdir():
            zf.write(p, f"Set5/original/{p.name}")
    out = tmp_path / "Set5"
    digest = _sha(arc.read_bytes())
    with pytest.raises(HashRequired):
        prepare_sr_benchmarks.main(["--name", "Set5", "--archive", str(arc), "--out", str(out),
                                    "--allow-partial"])
    assert prepare_sr_benchmarks.main(["--name", "Set5", "--archive", str(arc), "--sha256", digest,
                                       "--out", str(out), "--allow-partial"]) == 0
    gt = np.asarray(Image.open(out / "GTmod12/bird.png"))
    original = np.asarray(Image.open(hr / "bird.png"))
    assert gt.shape == (48, 60, 3) and np.array_equal(gt, modcrop(original, 12))
    for s in (2, 3, 4):
        lr = np.asarray(Image.open(out / f"LRbicx{s}/bird.png"))
        assert np.array_equal(lr, bicubic_downsample(gt, s))
    assert not any(p.name.startswith(".extract") for p in out.iterdir())  # temp folder cleaned


def test_gopro_layout(tmp_path):
    import prepare_gopro
    root = tmp_path / "GOPRO_Large"
    for split, scene in (("train", "GOPR0372_07_00"), ("test", "GOPR0384_11_00")):
        for f in ("000047.png", "000048.png"):
            for side in ("blur", "blur_gamma", "sharp"):
                _png(root / split / scene / side / f)
    out = tmp_path / "out"
    assert prepare_gopro.main(["--src", str(tmp_path), "--out", str(out), "--allow-partial"]) == 0
    assert sorted(p.name for p in (out / "test/GOPR0384_11_00").iterdir()) == ["blur", "sharp"]
    assert len(list((out / "train/GOPR0372_07_00/sharp").iterdir())) == 2
    (root / "test/GOPR0384_11_00/sharp/000048.png").unlink()
    with pytest.raises(prepare_gopro.PrepError, match="no sharp frame"):
        prepare_gopro.main(["--src", str(tmp_path), "--out", str(out), "--allow-partial"])


@pytest.mark.parametrize("layout", ["names", "folders"])
def test_rain100l_pairs(tmp_path, layout):
    import prepare_rain100l
    src = tmp_path / "src"
    for n in (1, 2):
        if layout == "names":
            _png(src / "rain_data_test_Light" / f"rain-{n:03d}.png", seed=n)
            _png(src / "rain_data_test_Light" / f"norain-{n:03d}.png", seed=5 + n)
            _png(src / "rain_data_test_Light" / f"rainstreak-{n:03d}.png")
        else:
            _png(src / "Rain100L" / "input" / f"{n}.png", seed=n)
            _png(src / "Rain100L" / "target" / f"{n}.png", seed=5 + n)
    out = tmp_path / "out"
    assert prepare_rain100l.main(["--split", "test", "--src", str(src), "--out", str(out),
                                  "--allow-partial"]) == 0
    assert sorted(p.name for p in (out / "test/degraded").iterdir()) == ["1.png", "2.png"]
    a = np.asarray(Image.open(out / "test/clean/2.png"))
    assert np.array_equal(a, np.random.default_rng(7).integers(0, 256, (24, 36, 3), dtype=np.uint8))


def test_div2k_from_archives_dir(tmp_path):
    import prepare_div2k
    stage = tmp_path / "stage"
    for n in (801, 802):
        _png(stage / "DIV2K_valid_HR" / f"{n:04d}.png", h=40, w=48, seed=n)
        _png(stage / "DIV2K_valid_LR_bicubic" / "X4" / f"{n:04d}x4.png", h=10, w=12, seed=n)
    dl = tmp_path / "dl"
    dl.mkdir()
    sums = []
    for name, folder in (("DIV2K_valid_HR.zip", "DIV2K_valid_HR"),
                         ("DIV2K_valid_LR_bicubic_X4.zip", "DIV2K_valid_LR_bicubic")):
        with zipfile.ZipFile(dl / name, "w") as zf:
            for p in sorted((stage / folder).rglob("*.png")):
                zf.write(p, p.relative_to(stage).as_posix())
        sums.append(f"{_sha((dl / name).read_bytes())}  {name}")
    (tmp_path / "div2k.sha256").write_text("\n".join(sums) + "\n")
    out = tmp_path / "out"
    args = ["--archives-dir", str(dl), "--parts", "valid", "--out", str(out), "--allow-partial"]
    with pytest.raises(HashRequired):
        prepare_div2k.main(args)
    assert prepare_div2k.main(args + ["--sha256-file", str(tmp_path / "div2k.sha256")]) == 0
    assert sorted(p.name for p in (out / "DIV2K_valid_LR_bicubic/X4").iterdir()) == ["0801x4.png", "0802x4.png"]
    (tmp_path / "div2k.sha256").write_text(sums[0] + "\n" + "0" * 64 + "  DIV2K_valid_LR_bicubic_X4.zip\n")
    with pytest.raises(VerificationError):
        prepare_div2k.main(args + ["--sha256-file", str(tmp_path / "div2k.sha256")])
    assert (dl / "DIV2K_valid_LR_bicubic_X4.zip").exists()  # the user's own file is never deleted
