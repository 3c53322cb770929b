"""Where the columnar store's files live: a local (or shared) directory, or an S3 bucket.

Files are written by the engine to a local staging path first and then published under
their final name in one step (a rename, or one upload), so no reader ever sees half a
file. Names are relative: `k<key id>/<YYYYMM>/<file id>-<random>.parquet`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import uuid
from pathlib import Path

log = logging.getLogger(__name__)


class LocalStorage:
    """Files under a directory (on one machine, or a shared mount for several)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging = self.root / ".staging"
        self.staging.mkdir(exist_ok=True)

    def url(self, name: str) -> str:
        return str(self.root / name)

    def put(self, local: Path, name: str) -> int:
        """Publish a staged file under `name`; returns its size in bytes."""
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        size = local.stat().st_size
        os.replace(local, target)
        return size

    def fetch(self, name: str, local: Path) -> None:
        """A copy of the stored file `name` at the local path `local`."""
        shutil.copyfile(self.root / name, local)

    def delete(self, names) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (self.root / name).unlink()

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.root / prefix.rstrip("/"), ignore_errors=True)

    def list(self, prefix: str = "") -> list[tuple[str, float]]:
        """(name, modified epoch seconds) of every file under `prefix`."""
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return []
        found = []
        for path in base.rglob("*.parquet"):
            if self.staging in path.parents:
                continue
            found.append((str(path.relative_to(self.root)), path.stat().st_mtime))
        return found

    def describe(self) -> str:
        return str(self.root)


class S3Storage:
    """Files in an S3 bucket (or any S3-compatible store) under a prefix."""

    def __init__(self, url: str, settings, staging: Path) -> None:
        try:
            import boto3
        except ImportError as exc:
            raise RuntimeError(
                "LAKE_URL is an s3:// URL but boto3 is not installed: pip install '.[s3]'"
            ) from exc
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = boto3.client(
            "s3",
            endpoint_url=settings.S3_ENDPOINT_URL or None,
            aws_access_key_id=settings.S3_ACCESS_KEY_ID or None,
            aws_secret_access_key=settings.S3_SECRET_ACCESS_KEY or None,
            region_name=settings.S3_REGION,
        )
        self.staging = staging
        self.staging.mkdir(parents=True, exist_ok=True)

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def url(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}"

    def put(self, local: Path, name: str) -> int:
        size = local.stat().st_size
        self.client.upload_file(str(local), self.bucket, self._key(name))
        local.unlink()
        return size

    def fetch(self, name: str, local: Path) -> None:
        """A copy of the stored object `name` at the local path `local`."""
        self.client.download_file(self.bucket, self._key(name), str(local))

    def delete(self, names) -> None:
        keys = [{"Key": self._key(n)} for n in names]
        for start in range(0, len(keys), 1000):  # the API's limit per call
            self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True}
            )

    def delete_prefix(self, prefix: str) -> None:
        self.delete([name for name, _ in self.list(prefix)])

    def list(self, prefix: str = "") -> list[tuple[str, float]]:
        found = []
        start = self._key(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
            for item in page.get("Contents", []):
                name = item["Key"][len(self.prefix) + 1 :] if self.prefix else item["Key"]
                found.append((name, item["LastModified"].timestamp()))
        return found

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def key_prefix(key_id: int) -> str:
    """Every file of a key lives under this prefix: deleting the key deletes it whole."""
    return f"k{int(key_id)}/"


def file_name(key_id: int, month: int, folder: str = "") -> str:
    """A new name, never repeated, for a file of one key's month (YYYYMM), in the folder of
    its dataset (server.lake.layout.Dataset.folder: "" for requests)."""
    return f"{key_prefix(key_id)}{folder}{month}/{int(time.time())}-{uuid.uuid4().hex}.parquet"


_storages: dict[tuple, LocalStorage | S3Storage] = {}


def get_storage(settings=None) -> LocalStorage | S3Storage:
    """The configured storage (LAKE_URL), one object per process and setting."""
    from server.config import current_config

    settings = settings or current_config()
    key = (settings.LAKE_URL, settings.S3_ENDPOINT_URL, settings.DATA_DIR)
    if key not in _storages:
        if settings.LAKE_URL.startswith("s3://"):
            staging = Path(settings.DATA_DIR) / "lake-staging"
            _storages[key] = S3Storage(settings.LAKE_URL, settings, staging)
        else:
            _storages[key] = LocalStorage(settings.LAKE_URL)
    return _storages[key]


def staging_file(storage, stem: str) -> Path:
    """A fresh local path to write a file to before publishing it."""
    return storage.staging / f"{stem}-{os.getpid()}-{time.monotonic_ns()}.parquet"
