"""Every shipped copy equals what the release manifest says (``models/RELEASE.json``).

The release stage of ``reproduce`` is the only writer of ``models/``, the Android bundle and
the runtime package's links; this checks, in a second, that nothing drifted since.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
import subprocess

import pytest

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def manifest() -> dict:
    path = MODELS / "RELEASE.json"
    if not path.is_file():
        pytest.fail(f"{path} missing: `make reproduce` writes it with the release")
    return json.loads(path.read_text())


def test_every_released_file_has_the_hash_the_manifest_records(manifest):
    listed = {**manifest["android"]}
    for entry in manifest["models"].values():
        listed.update(entry["files"])
    assert listed, "the manifest lists no file"
    for name, rec in listed.items():
        path = MODELS / name
        assert path.is_file(), f"{path}: listed in RELEASE.json but missing"
        assert path.stat().st_size == rec["bytes"] and _sha(path) == rec["sha256"], f"{path}: differs from RELEASE.json"


def test_no_file_ships_without_being_listed(manifest):
    tracked = subprocess.run(["git", "ls-files", "models"], cwd=REPO, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout: cannot tell which files ship")
    listed = set(manifest["android"]) | {n for e in manifest["models"].values() for n in e["files"]}
    unlisted = {str(Path(t).relative_to("models")) for t in tracked} - listed - {"RELEASE.json"}
    assert not unlisted, f"files in models/ that RELEASE.json does not list: {sorted(unlisted)}"


def test_every_copy_equals_its_original(manifest):
    assert manifest["copies"], "no copies recorded (Android bundle, runtime links)"
    for copy, original in manifest["copies"].items():
        path = (MODELS / copy)
        assert path.is_file(), f"{path}: missing copy of {original}"
        assert _sha(path) == _sha(MODELS / original), f"{path} differs from models/{original}"


def test_the_runtime_default_and_android_bundle_are_the_default_model(manifest):
    from edge_runtime.default_model import RELEASED_NAME

    assert RELEASED_NAME == f"{manifest['default']}-int8.tflite" == manifest["runtime_default_file"]
    assert manifest["copies"]["android/model.tflite"] == RELEASED_NAME


def test_conversion_reports_name_the_released_bytes(manifest):
    """The conversion report is where the evaluated numbers come from: its hashes must be the
    shipped files', or the numbers describe some other model."""
    from reproduce import released

    for prefix, entry in manifest["models"].items():
        names = released(prefix, android_bundle=False)
        report = json.loads((MODELS / names["convert/conversion_report.json"]).read_text())
        for src, name in names.items():
            artifact = Path(src).name
            if artifact in report["artifacts"]:
                assert report["artifacts"][artifact]["sha256"] == entry["files"][name]["sha256"], name


def test_release_manifest_is_rewritten_identically_from_the_files(tmp_path, manifest):
    """The committed manifest is what the release code writes for these files."""
    import reproduce

    out = reproduce.write_release_manifest(MODELS, REPO / "edge_runtime" / "models", out=tmp_path / "RELEASE.json")
    assert json.loads(out.read_text()) == manifest
