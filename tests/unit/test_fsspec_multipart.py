"""The gateway's multipart parts (over a non-S3 target) are kept in a directory private to the
user: the temporary directory is shared, and another tenant may plant paths there first."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tiercache.gateway.fsspec_multipart import Uploads, default_root, private_root
from tiercache.tiers.safedir import UnsafePathError


def test_the_default_root_is_per_user_and_created_private() -> None:
    assert default_root().name == f"tiercache-multipart-{os.geteuid()}"


def test_uploads_are_kept_in_a_private_directory(tmp_path: Path) -> None:
    root = tmp_path / "uploads"
    uploads = Uploads(root)
    upload_id = uploads.create("bucket", "key")
    assert stat.S_IMODE(os.lstat(root).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(root / upload_id).st_mode) == 0o700
    assert [u["UploadId"] for u in uploads.uploads("bucket")] == [upload_id]


def test_an_existing_root_readable_by_others_is_narrowed(tmp_path: Path) -> None:
    root = tmp_path / "uploads"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    Uploads(root).create("b", "k")
    assert stat.S_IMODE(os.lstat(root).st_mode) == 0o700


@pytest.mark.parametrize("plant", ["symlink", "other owner", "group writable"])
def test_a_planted_root_is_refused_naming_the_path(tmp_path: Path, plant: str) -> None:
    root = tmp_path / "uploads"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if plant == "symlink":
        root.symlink_to(elsewhere)
    elif plant == "other owner":
        if os.geteuid() != 0:
            pytest.fail("this test chowns a directory to another uid: run it as root")
        root.mkdir()
        os.chown(root, 12345, 12345)
    else:
        root.mkdir()
        os.chmod(root, 0o775)
    uploads = Uploads(root)
    with pytest.raises(UnsafePathError, match=str(root)):
        uploads.create("b", "k")
    with pytest.raises(UnsafePathError):
        uploads.uploads("b")  # nothing planted there is listed or completed either
    assert list(elsewhere.iterdir()) == []


def test_the_per_user_parent_is_checked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    parent = default_root()
    parent.symlink_to(tmp_path)
    with pytest.raises(UnsafePathError, match="symlink"):
        private_root(parent / "digest")
