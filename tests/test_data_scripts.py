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


# ---------------------------------------------- link resolution, limits, corruption
def _no_data_filter(monkeypatch, with_filter: bool) -> None:
    """Run the safety checks as on a Python without tarfile's data filter."""
    if not with_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)


def _dir(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, None


LINK_ATTACKS = {
    # sub/up -> .. is inside (sub/.. = .); esc -> sub/up/.. is lexically "sub", physically the parent
    "chain": [_dir("sub"), _special("sub/up", tarfile.SYMTYPE, ".."),
              _special("esc", tarfile.SYMTYPE, "sub/up/..")],
    # the same chain, then a hard link to a file outside, through it
    "hardlink_via_chain": [_dir("sub"), _special("sub/up", tarfile.SYMTYPE, ".."),
                           _special("esc", tarfile.SYMTYPE, "sub/up/.."),
                           _special("grab", tarfile.LNKTYPE, "esc/secret.txt")],
    # a hard link through an (inside) symlink
    "hardlink_via_symlink": [_dir("sub"), _file("sub/f.txt"), _special("s", tarfile.SYMTYPE, "sub"),
                             _special("h", tarfile.LNKTYPE, "s/f.txt")],
    # a hard link to a symlink member
    "hardlink_to_symlink": [_file("f.txt"), _special("s", tarfile.SYMTYPE, "f.txt"),
                            _special("h", tarfile.LNKTYPE, "s")],
    # a later symlink changes where an earlier one leads: a -> x/.. with x -> . is the parent
    "later_link": [_special("a", tarfile.SYMTYPE, "x/.."), _special("x", tarfile.SYMTYPE, ".")],
    "loop": [_special("a", tarfile.SYMTYPE, "b"), _special("b", tarfile.SYMTYPE, "a")],
    # a symlink replaced by a file of the same name would be written through
    "replace_link": [_file("t.txt"), _special("x", tarfile.SYMTYPE, "t.txt"), _file("x", b"overwrite")],
}


@pytest.mark.parametrize("with_filter", [True, False], ids=["data_filter", "no_filter"])
@pytest.mark.parametrize("attack", sorted(LINK_ATTACKS))
def test_link_attacks_rejected_without_relying_on_tarfile(tmp_path, monkeypatch, attack, with_filter):
    _no_data_filter(monkeypatch, with_filter)
    work = tmp_path / "work"
    work.mkdir()
    secret = work / "secret.txt"
    secret.write_bytes(b"outside")
    arc = _tar(tmp_path / "links.tar", LINK_ATTACKS[attack])
    with pytest.raises(UnsafeArchiveError, match=r"links\.tar: (symlink|hard link|member)") as e:
        safe_extract(arc, work / "out")
    assert "\n" not in str(e.value)
    assert not (work / "out").exists()  # refused before anything was written
    assert sorted(p.name for p in work.iterdir()) == ["secret.txt"] and secret.read_bytes() == b"outside"


@pytest.mark.parametrize("with_filter", [True, False], ids=["data_filter", "no_filter"])
def test_links_inside_still_extract(tmp_path, monkeypatch, with_filter):
    _no_data_filter(monkeypatch, with_filter)
    arc = _tar(tmp_path / "ok.tar", [_dir("v2"), _file("v2/x.txt", b"X"), _special("cur", tarfile.SYMTYPE, "v2"),
                                     _special("latest", tarfile.SYMTYPE, "cur"), _dir("v2/deep"),
                                     _special("v2/deep/up", tarfile.SYMTYPE, "../../cur/x.txt"),
                                     _special("hard.txt", tarfile.LNKTYPE, "v2/x.txt")])
    out = safe_extract(arc, tmp_path / "out")
    assert (out / "latest/x.txt").read_bytes() == b"X" and (out / "v2/deep/up").read_bytes() == b"X"
    assert (out / "hard.txt").read_bytes() == b"X"


def test_tar_size_and_member_limits(tmp_path):
    arc = _tar(tmp_path / "big.tar.gz", [_file(f"f{i}.bin", bytes(1000)) for i in range(3)])
    with pytest.raises(UnsafeArchiveError, match=r"big\.tar\.gz: unpacks to more than .*--max-extract-gb"):
        safe_extract(arc, tmp_path / "o", max_bytes=2500)
    with pytest.raises(UnsafeArchiveError, match=r"big\.tar\.gz: 3 members, more than the limit of 2"):
        safe_extract(arc, tmp_path / "o", max_members=2)
    assert not (tmp_path / "o").exists()
    assert sorted(p.name for p in safe_extract(arc, tmp_path / "o", max_bytes=3000).iterdir()) == \
        ["f0.bin", "f1.bin", "f2.bin"]


def test_zip_bomb_and_size_limits(tmp_path):
    arc = tmp_path / "bomb.zip"
    with zipfile.ZipFile(arc, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", bytes(2 << 20))  # 2 MiB of zeros: ~2 kB compressed
    with pytest.raises(UnsafeArchiveError, match=r"bomb\.zip: member 'zeros\.bin' expands \d+ times"):
        safe_extract(arc, tmp_path / "o")
    with pytest.raises(UnsafeArchiveError, match=r"bomb\.zip: unpacks to more than"):
        safe_extract(arc, tmp_path / "o", max_bytes=1 << 20, max_ratio=1e6)
    assert not (tmp_path / "o").exists()
    assert (safe_extract(arc, tmp_path / "o", max_ratio=1e6) / "zeros.bin").stat().st_size == 2 << 20


def _targz(path: Path, n: int = 3) -> bytes:
    _tar(path, [_file(f"f{i}.bin", np.random.default_rng(i).bytes(3000)) for i in range(n)])
    return path.read_bytes()


def test_corrupt_and_truncated_archives_are_one_clear_error(tmp_path):
    from _download import CorruptArchiveError
    cases = {}
    z = tmp_path / "crc.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.txt", b"hello world " * 50)
    raw = bytearray(z.read_bytes())
    raw[raw.index(b"hello world")] ^= 0xFF  # one flipped byte in the stored data: bad CRC
    z.write_bytes(bytes(raw))
    cases[z] = "Bad CRC"
    full = _targz(tmp_path / "full.tar.gz")
    (tmp_path / "half.tar.gz").write_bytes(full[:len(full) // 2])
    cases[tmp_path / "half.tar.gz"] = "corrupt or truncated"
    (tmp_path / "notrailer.tar.gz").write_bytes(full[:-6])  # all tar data there, gzip CRC/length missing
    cases[tmp_path / "notrailer.tar.gz"] = "corrupt or truncated"
    with tarfile.open(tmp_path / "plain.tar", "w") as tf:
        for i in range(3):
            info, data = _file(f"f{i}.bin", bytes(3000))
            tf.addfile(info, io.BytesIO(data))
    (tmp_path / "cut.tar").write_bytes((tmp_path / "plain.tar").read_bytes()[:2 * (512 + 3072)])  # at a member end
    cases[tmp_path / "cut.tar"] = "truncated tar archive"
    for arc, what in cases.items():
        with pytest.raises(CorruptArchiveError, match=what) as e:
            safe_extract(arc, tmp_path / f"out_{arc.name}")
        assert str(e.value).startswith(f"{arc}: ") and "\n" not in str(e.value), str(e.value)


def test_script_prints_one_line_for_a_bad_archive(tmp_path, capsys):
    import _common
    import prepare_rain100l
    full = _targz(tmp_path / "full.tar.gz")
    arc = tmp_path / "Rain100L_test.tar.gz"
    arc.write_bytes(full[:len(full) // 2])
    for extra in (["--sha256", _sha(arc.read_bytes())], ["--sha256", _sha(full), "--max-extract-gb", "1e-6"]):
        if "--max-extract-gb" in extra:
            arc.write_bytes(full)
        with pytest.raises(SystemExit) as e:
            _common.run_main(lambda: prepare_rain100l.main(["--split", "test", "--archive", str(arc),
                                                            "--out", str(tmp_path / "out")] + extra))
        err = capsys.readouterr().err
        assert e.value.code == 1 and err.startswith(f"error: {arc}: ") and err.count("\n") == 1, err
        assert "Traceback" not in err and not (tmp_path / "out").exists()


# ------------------------------------------------------------------ --accept-hash
def test_accept_hash_records_for_a_local_archive(tmp_path, capsys):
    f = tmp_path / "user.zip"
    f.write_bytes(b"abc")
    assert _download.verify_file(f, None, accept_hash=True) == _sha(b"abc")
    side = tmp_path / "user.zip.sha256"
    assert side.read_text() == f"{_sha(b'abc')}  user.zip\n"
    assert f"recorded in {side}" in capsys.readouterr().out
    assert _download.verify_file(f, None) == _sha(b"abc")  # the next run needs no --accept-hash
    f.write_bytes(b"abd")
    with pytest.raises(VerificationError, match="recorded in .*user.zip.sha256"):
        _download.verify_file(f, None)
    with pytest.raises(VerificationError):  # --accept-hash does not silently replace a recorded hash
        _download.verify_file(f, None, accept_hash=True)
    assert f.exists()


def test_accept_hash_message_names_the_file_it_wrote(tmp_path, remote, capsys):
    _, url, data = remote
    dest = tmp_path / "cache" / "blob.bin"
    download(url, dest, accept_hash=True)
    out = capsys.readouterr().out
    written = out.split("recorded in ", 1)[1].strip()
    assert Path(written) == dest.with_name("blob.bin.sha256") and Path(written).read_text().startswith(_sha(data))
    assert not list(dest.parent.glob("*.unverified*"))


def test_accept_hash_unwritable_sidecar_is_said(tmp_path, monkeypatch, capsys):
    f = tmp_path / "user.zip"
    f.write_bytes(b"abc")
    monkeypatch.setattr(_download, "_sidecar", lambda p: tmp_path / "missing_dir" / "user.zip.sha256")
    _download.verify_file(f, None, accept_hash=True)
    out = capsys.readouterr().out
    assert "could NOT record" in out and f"--sha256 {_sha(b'abc')}" in out and "recorded in" not in out


def test_script_accept_hash_then_verified_run(tmp_path, capsys):
    import _common
    import prepare_rain100l
    src = tmp_path / "pack" / "Rain100L"
    for n in (1, 2):
        _png(src / "input" / f"{n}.png", seed=n)
        _png(src / "target" / f"{n}.png", seed=5 + n)
    arc = tmp_path / "Rain100L_test.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        for p in sorted(src.rglob("*.png")):
            zf.write(p, p.relative_to(src.parent).as_posix())
    args = ["--split", "test", "--archive", str(arc), "--out", str(tmp_path / "out"), "--allow-partial"]
    assert prepare_rain100l.main(args + ["--accept-hash"]) == 0
    assert prepare_rain100l.main(args) == 0  # verified against the recorded hash
    with zipfile.ZipFile(arc, "a") as zf:
        zf.writestr("Rain100L/extra.txt", b"changed")
    with pytest.raises(SystemExit) as e:
        _common.run_main(lambda: prepare_rain100l.main(args))
    assert e.value.code == 1 and "SHA-256 mismatch" in capsys.readouterr().err


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


# ------------------------------------------- staged output, manifest, duplicates
def _hw4_src(root: Path, n: int = 3, kinds=("rain", "snow")) -> Path:
    for kind in kinds:
        for i in range(1, n + 1):
            _png(root / "train/degraded" / f"{kind}-{i}.png", h=8, w=8, seed=i)
            _png(root / "train/clean" / f"{kind}_clean-{i}.png", h=8, w=8, seed=10 + i)
    for i in (0, 1):
        _png(root / "test/degraded" / f"{i}.png", h=8, w=8)
    return root


def _names(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()} if d.is_dir() else set()


def test_hw4_reconvert_never_leaks_between_train_and_val(tmp_path):
    import prepare_hw4
    from _manifest import verify_prepared
    src, out = _hw4_src(tmp_path / "hw4"), tmp_path / "conv"
    vals = []
    for seed in (0, 1):
        assert prepare_hw4.main(["--src", str(src), "--allow-partial", "--out", str(out), "--val-ratio", "0.34",
                                 "--seed", str(seed)]) == 0
        vals.append(_names(out / "val/degraded"))
        train, val = _names(out / "train/degraded"), _names(out / "val/degraded")
        assert not train & val and len(train) == 4 and len(val) == 2 and _names(out / "val/clean") == val
    m = verify_prepared(out, "prepare_hw4")
    assert m["params"]["seed"] == 1 and m["summary"] == {"train": 4, "val": 2, "test": 2, "rain": 3, "snow": 3}
    assert vals[0] != vals[1]  # the two seeds picked different images: the old code mixed them
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("conv.")] == []  # no partial, no backup


def test_rerun_removes_stale_files_and_keeps_the_other_split(tmp_path):
    import prepare_gopro
    import prepare_rain100l
    from _manifest import verify_prepared
    src, out = tmp_path / "rsrc", tmp_path / "Rain100L"
    for n in (1, 2, 3):
        _png(src / f"rain-{n}.png", h=8, w=8, seed=n)
        _png(src / f"norain-{n}.png", h=8, w=8, seed=5 + n)
    for split in ("train", "test"):
        assert prepare_rain100l.main(["--split", split, "--src", str(src), "--out", str(out), "--allow-partial"]) == 0
    for n in (2, 3):
        (src / f"rain-{n}.png").unlink()
        (src / f"norain-{n}.png").unlink()
    assert prepare_rain100l.main(["--split", "test", "--src", str(src), "--out", str(out), "--allow-partial"]) == 0
    assert _names(out / "test/degraded") == {"1.png"} and _names(out / "train/degraded") == {"1.png", "2.png", "3.png"}
    assert verify_prepared(out / "test")["summary"] == {"pairs": 1} and verify_prepared(out / "train")
    # GoPro: a scene removed from the input disappears from the output
    root = tmp_path / "g" / "GOPRO_Large"
    for split, scene in (("train", "A"), ("train", "B"), ("test", "C")):
        for side in ("blur", "sharp"):
            _png(root / split / scene / side / "000001.png", h=8, w=8)
    gout = tmp_path / "GoPro"
    assert prepare_gopro.main(["--src", str(root), "--out", str(gout), "--allow-partial"]) == 0
    import shutil
    shutil.rmtree(root / "train/B")
    assert prepare_gopro.main(["--src", str(root), "--out", str(gout), "--allow-partial"]) == 0
    assert _names(gout / "train") == {"A"} and verify_prepared(gout)["summary"]["train"] == {"pairs": 1, "scenes": 1}


def test_interrupted_run_leaves_the_old_output_or_none(tmp_path, monkeypatch):
    import _common
    import prepare_hw4
    from _manifest import verify_prepared
    src = _hw4_src(tmp_path / "hw4")
    args = ["--src", str(src), "--allow-partial", "--val-ratio", "0.34"]
    real_place, calls = _common.place, []

    def dying_place(*a, **k):
        calls.append(1)
        if len(calls) > 5:
            raise KeyboardInterrupt  # Ctrl-C (or a crash) half-way through the copies
        return real_place(*a, **k)

    monkeypatch.setattr(_common, "place", dying_place)
    with pytest.raises(KeyboardInterrupt):
        prepare_hw4.main(args + ["--out", str(tmp_path / "fresh")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hw4"]  # no half folder, no partial
    monkeypatch.setattr(_common, "place", real_place)
    out = tmp_path / "conv"
    assert prepare_hw4.main(args + ["--out", str(out)]) == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    calls.clear()
    monkeypatch.setattr(_common, "place", dying_place)
    with pytest.raises(KeyboardInterrupt):
        prepare_hw4.main(args + ["--out", str(out), "--seed", "1"])
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before and verify_prepared(out)["params"]["seed"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conv", "hw4"]


def test_leftovers_of_a_killed_run_are_removed(tmp_path):
    import subprocess
    import prepare_hw4
    src = _hw4_src(tmp_path / "hw4")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for kind in ("partial", "extract", "old"):
        (tmp_path / f"conv.{kind}-{dead.pid}-abc" / "train").mkdir(parents=True)
    alive = tmp_path / f"conv.partial-{os.getppid()}-xyz"  # of a running process: kept
    alive.mkdir()
    assert prepare_hw4.main(["--src", str(src), "--allow-partial", "--out", str(tmp_path / "conv")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["conv", "hw4", alive.name])


def test_verify_prepared_refuses_incomplete_or_changed_folders(tmp_path):
    import prepare_hw4
    from _manifest import PrepError, verify_prepared
    src, out = _hw4_src(tmp_path / "hw4"), tmp_path / "conv"
    assert prepare_hw4.main(["--src", str(src), "--allow-partial", "--out", str(out), "--val-ratio", "0.34"]) == 0
    verify_prepared(out)
    with pytest.raises(PrepError, match="prepared by 'prepare_hw4', not by 'prepare_gopro'"):
        verify_prepared(out, "prepare_gopro")
    victim = sorted((out / "train/degraded").iterdir())[0]
    data = victim.read_bytes()
    victim.unlink()  # the "86 of 100 pairs" case
    with pytest.raises(PrepError) as e:
        verify_prepared(out)
    assert str(e.value).startswith(f"{out}: files differ") and "train/degraded/: 4 in the manifest, 3 found" \
        in str(e.value) and "\n" not in str(e.value)
    victim.write_bytes(data)
    (out / "val/clean/extra.png").write_bytes(data)
    with pytest.raises(PrepError, match="val/clean/: 2 in the manifest, 3 found"):
        verify_prepared(out)
    (out / "val/clean/extra.png").unlink()
    (out / "MANIFEST.json").write_text((out / "MANIFEST.json").read_text().replace('"complete": true',
                                                                                    '"complete": false'))
    with pytest.raises(PrepError, match="not marked complete"):
        verify_prepared(out)
    (out / "MANIFEST.json").unlink()
    with pytest.raises(PrepError, match=f"^{out}: no MANIFEST.json"):
        verify_prepared(out)
    # a folder the scripts did not make (or an old, manifest-less one) is never overwritten
    with pytest.raises(PrepError, match="has no MANIFEST.json .* never overwritten"):
        prepare_hw4.main(["--src", str(src), "--allow-partial", "--out", str(out)])
    assert (out / "split.json").exists()


def test_symlinked_output_detects_a_moved_source(tmp_path):
    import prepare_gopro
    from _manifest import PrepError, verify_prepared
    root = tmp_path / "GOPRO_Large"
    for split in ("train", "test"):
        for side in ("blur", "sharp"):
            _png(root / split / "S" / side / "000001.png", h=8, w=8)
    out = tmp_path / "GoPro"
    assert prepare_gopro.main(["--src", str(root), "--out", str(out), "--allow-partial", "--link", "symlink"]) == 0
    assert verify_prepared(out)["source"] == {"src": str(root.resolve())}
    root.rename(tmp_path / "moved")
    with pytest.raises(PrepError, match="broken symlink"):
        verify_prepared(out)


def test_manifest_records_the_archive(tmp_path):
    import prepare_sr_benchmarks
    from _manifest import verify_prepared
    _png(tmp_path / "pack/Set5/original/baby.png", h=24, w=24)
    arc = tmp_path / "Set5.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        zf.write(tmp_path / "pack/Set5/original/baby.png", "Set5/original/baby.png")
    out = tmp_path / "Set5"
    assert prepare_sr_benchmarks.main(["--name", "Set5", "--archive", str(arc), "--sha256", _sha(arc.read_bytes()),
                                       "--out", str(out), "--allow-partial", "--scales", "2", "4"]) == 0
    m = verify_prepared(out, "prepare_sr_benchmarks")
    assert m["source"] == {"archive": "Set5.zip", "sha256": _sha(arc.read_bytes())}
    assert m["counts"] == {"GTmod4": 1, "LRbicx2": 1, "LRbicx4": 1} and m["complete"] is True
    assert m["params"]["scales"] == [2, 4] and m["script_version"]


def test_div2k_keeps_parts_not_rebuilt(tmp_path):
    import prepare_div2k
    from _manifest import verify_prepared
    src = tmp_path / "src"
    for part, nums in (("train", (1, 2)), ("valid", (801, 802))):
        for n in nums:
            _png(src / f"DIV2K_{part}_HR" / f"{n:04d}.png", h=8, w=8, seed=n)
            _png(src / f"DIV2K_{part}_LR_bicubic" / "X4" / f"{n:04d}x4.png", h=2, w=2, seed=n)
    out = tmp_path / "DIV2K"
    base = ["--src", str(src), "--out", str(out), "--allow-partial"]
    assert prepare_div2k.main(base + ["--parts", "valid"]) == 0
    assert prepare_div2k.main(base + ["--parts", "train"]) == 0
    m = verify_prepared(out, "prepare_div2k")
    assert m["summary"] == {"train/X4": 2, "valid/X4": 2} and _names(out / "DIV2K_valid_HR") == {"0801.png", "0802.png"}
    (src / "DIV2K_valid_HR/0802.png").unlink()
    (src / "DIV2K_valid_LR_bicubic/X4/0802x4.png").unlink()
    assert prepare_div2k.main(base + ["--parts", "valid"]) == 0
    assert _names(out / "DIV2K_valid_HR") == {"0801.png"} and _names(out / "DIV2K_train_HR") == {"0001.png", "0002.png"}
    assert verify_prepared(out)["summary"] == {"train/X4": 2, "valid/X4": 1}


@pytest.mark.parametrize("case", ["rain100l_names", "rain100l_case", "hw4", "hw4_test", "gopro", "sr"])
def test_duplicate_numbers_are_an_error_naming_both(tmp_path, case):
    import prepare_gopro
    import prepare_hw4
    import prepare_rain100l
    import prepare_sr_benchmarks
    src, out = tmp_path / "src", tmp_path / "out"
    if case == "rain100l_names":
        for name in ("rain-5.png", "norain-5.png", "rain-05.png"):
            _png(src / name, h=8, w=8)
        a, b, run = src / "rain-05.png", src / "rain-5.png", prepare_rain100l.main
        argv = ["--split", "test", "--src", str(src), "--out", str(out), "--allow-partial"]
    elif case == "rain100l_case":
        for name in ("input/1.png", "input/1.PNG", "target/1.png", "target/1.PNG"):
            _png(src / name, h=8, w=8)
        a, b, run = src / "input/1.PNG", src / "input/1.png", prepare_rain100l.main
        argv = ["--split", "test", "--src", str(src), "--out", str(out), "--allow-partial"]
    elif case in ("hw4", "hw4_test"):
        _hw4_src(src, n=5)
        if case == "hw4":
            a, b = src / "train/degraded/rain-05.png", src / "train/degraded/rain-5.png"
        else:
            a, b = src / "test/degraded/01.png", src / "test/degraded/1.png"
        _png(a, h=8, w=8)
        run, argv = prepare_hw4.main, ["--src", str(src), "--out", str(out), "--allow-partial"]
    elif case == "gopro":
        for split in ("train", "test"):
            for side in ("blur", "sharp"):
                _png(src / split / "S" / side / "000047.png", h=8, w=8)
        a, b = src / "train/S/blur/000047.png", src / "train/S/blur/47.png"
        _png(b, h=8, w=8)
        run, argv = prepare_gopro.main, ["--src", str(src), "--out", str(out), "--allow-partial"]
    else:
        a, b = _png(src / "HR/baby.bmp", h=12, w=12), _png(src / "HR/baby.png", h=12, w=12)
        run, argv = prepare_sr_benchmarks.main, ["--name", "Set5", "--src", str(src), "--out", str(out),
                                                 "--allow-partial"]
    with pytest.raises(prepare_hw4.PrepError) as e:
        run(argv)
    assert str(a) in str(e.value) and str(b) in str(e.value), str(e.value)
    assert not out.exists()


@pytest.mark.parametrize("script", ["hw4", "gopro", "div2k", "sr"])
def test_decompression_bomb_header_names_the_file(tmp_path, monkeypatch, script):
    import PIL.Image
    import prepare_div2k
    import prepare_gopro
    import prepare_hw4
    import prepare_sr_benchmarks
    src = tmp_path / "src"
    if script == "hw4":
        _hw4_src(src, n=1)
        bomb, run = src / "train/degraded/rain-1.png", prepare_hw4.main
        argv = ["--src", str(src), "--allow-partial"]
    elif script == "gopro":
        for split in ("train", "test"):
            for side in ("blur", "sharp"):
                _png(src / split / "S" / side / "000001.png", h=8, w=8)
        bomb, run = src / "train/S/blur/000001.png", prepare_gopro.main
        argv = ["--src", str(src), "--out", str(tmp_path / "out"), "--allow-partial"]
    elif script == "div2k":
        _png(src / "DIV2K_valid_HR/0801.png", h=8, w=8)
        _png(src / "DIV2K_valid_LR_bicubic/X4/0801x4.png", h=2, w=2)
        bomb, run = src / "DIV2K_valid_HR/0801.png", prepare_div2k.main
        argv = ["--src", str(src), "--parts", "valid", "--out", str(tmp_path / "out"), "--allow-partial"]
    else:
        _png(src / "HR/baby.png", h=12, w=12)
        bomb, run = src / "HR/baby.png", prepare_sr_benchmarks.main
        argv = ["--name", "Set5", "--src", str(src), "--out", str(tmp_path / "out"), "--allow-partial"]
    _png(bomb, h=64, w=64)  # 4096 pixels, over twice the lowered limit: Pillow's DecompressionBombError
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(prepare_hw4.PrepError, match=f"{bomb}: refused as a possible decompression bomb"):
        run(argv)
