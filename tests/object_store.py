"""A real S3 API on 127.0.0.1 for the tests: moto's server mode, started on a free port and always stopped.

boto3, s3fs (Kedro's datasets), DVC and MLflow talk to it unmodified. Moto keeps its state per
process, so every test gets its own bucket.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.conftest import patience
from tests.tracking.conftest import SERVER_ENV, free_port, stop, wait_for_http

REGION = "us-east-1"
KEY, SECRET = "neurontune-test", "neurontune-test-secret"  # moto accepts any credentials


@dataclass
class ObjectStore:
    endpoint: str
    bucket: str

    def env(self) -> dict[str, str]:
        """The standard AWS variables a client process needs (botocore reads ``AWS_ENDPOINT_URL``)."""
        return {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": REGION,
                "AWS_ENDPOINT_URL": self.endpoint, "NO_PROXY": "127.0.0.1,localhost"}

    def storage_options(self) -> dict[str, str]:
        """fsspec/s3fs options, as a catalog ``credentials:`` entry would give them."""
        return {"key": KEY, "secret": SECRET, "endpoint_url": self.endpoint}

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=KEY, aws_secret_access_key=SECRET)

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a moto S3 server for the whole session (stopped at its end)."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def object_store(s3_endpoint) -> ObjectStore:
    """A fresh, empty bucket on the session's S3 server."""
    store = ObjectStore(s3_endpoint, f"neurontune-{uuid.uuid4().hex[:12]}")
    store.client().create_bucket(Bucket=store.bucket)
    return store


@contextmanager
def mlflow_server(store: ObjectStore, directory: Path, env: dict[str, str]) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 (SQLite backend) proxying artifacts to ``s3://<bucket>/mlflow``.

    Only the server gets bucket credentials and ``MLFLOW_S3_ENDPOINT_URL``; clients need just the
    tracking URI it yields. The server is always stopped; its log is printed when the block fails.
    """
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server_env = {key: value for key, value in env.items() if not key.startswith(("AWS_", "MLFLOW_"))}
    server_env.update({key: value for key, value in store.env().items() if key != "AWS_ENDPOINT_URL"},
                      MLFLOW_S3_ENDPOINT_URL=store.endpoint, **SERVER_ENV)
    with open(directory / "mlflow-server.log", "w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{directory / 'mlflow-backend.db'}",
             "--artifacts-destination", f"s3://{store.bucket}/mlflow"],
            cwd=directory, env=server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            wait_for_http(f"{uri}/health", process, timeout=patience(120))
            yield uri
        except BaseException:
            log.seek(0)
            print(log.read()[-4000:])
            raise
        finally:
            stop(process)
