"""Bad arguments give localckpt errors that say what to do, and secrets stay secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import StoreFactory

import localckpt
from localckpt.errors import InvalidInputError, NotFoundError
from localckpt.objects import Objects, split_credentials


def test_load_stage_output_with_a_non_string_stage(new_store: StoreFactory) -> None:
    store = new_store("memory")
    tl = store.create_timeline("v", "p", [np.zeros((4, 4, 3), np.uint8)], codec="png")
    for bad in (["x"], None, 3):
        with pytest.raises(InvalidInputError, match="stage_name"):
            store.load_stage_output(tl.root_checkpoint_id, bad)  # type: ignore[arg-type]


def test_objects_that_cannot_be_a_directory(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(InvalidInputError, match="not a directory"):
        localckpt.open(str(tmp_path / "s"), objects=str(a_file), create=True)
    with pytest.raises(InvalidInputError, match="not a directory"):
        Objects.from_url(str(a_file))
    with pytest.raises(InvalidInputError, match="cannot create"):
        Objects.from_url(str(a_file / "below"))


def test_an_unknown_objects_scheme(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="nosuch") as info:
        localckpt.open(str(tmp_path / "s"), objects="nosuch://bucket/x", create=True)
    assert "s3://" in str(info.value)  # what to use instead
    for bad in (123, None, ""):
        with pytest.raises(InvalidInputError):
            Objects.from_url(bad)  # type: ignore[arg-type]


def test_credentials_in_an_s3_url_never_show(s3_base: tuple[str, dict[str, Any]],
                                             tmp_path: Path) -> None:
    base, opts = s3_base
    bucket_and_prefix = base[len("s3://"):]
    secret = "Sup3rSecretValue42"
    url = f"s3://AKIAKEYINURL:{secret}@{bucket_and_prefix}/creds"
    with localckpt.open(str(tmp_path / "s"), objects=url, storage_options=opts,
                        create=True) as store:
        texts = [repr(store), repr(store.objects), store.objects.describe()]
        tl = store.create_timeline("v", "p", [np.zeros((4, 4, 3), np.uint8)], codec="png")
        store.objects.delete([f"frames/{tl.id}/index.parquet"])
        with pytest.raises(localckpt.LocalckptError) as info:
            store.get_timeline_frames(tl.id)
        texts.append(str(info.value))
        with pytest.raises(NotFoundError) as missing:
            store.objects.get("frames/nothing/here")
        texts.append(str(missing.value))
    for text in texts:
        assert secret not in text and "AKIAKEYINURL" not in text, text
    assert bucket_and_prefix.split("/")[0] in texts[2]  # still says where


def test_split_credentials() -> None:
    assert split_credentials("s3://k:s@bucket/p") == ("s3://bucket/p", {"key": "k", "secret": "s"})
    assert split_credentials("s3://bucket/p") == ("s3://bucket/p", {})
    assert split_credentials("/local/dir") == ("/local/dir", {})
    assert split_credentials("file:///x@y") == ("file:///x@y", {})


def test_the_secret_of_storage_options_is_redacted_from_object_errors(tmp_path: Path) -> None:
    objects = Objects.from_url(str(tmp_path / "o"))
    redacting = Objects(objects.fs, objects.root, secrets=["hunter22"])
    assert redacting.redact("password hunter22 leaked") == "password *** leaked"
