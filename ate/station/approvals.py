"""What production may run. A sequence or a provisioning profile is known by one content
digest over the files that decide what a unit gets: the sequence with its test firmware
image, the profile with its release manifest (which pins every production image by
sha256, checked when the profile opens). An engineer approves a digest in the line
database (`ate approval add`); a station in production mode (`production: true`) refuses to
start or reload with anything whose digest is not approved there, so a file edited on the
station PC cannot run. Parts are named by role, not file name: renaming a file keeps its
approval, changing one byte of it does not.

Not covered, and said so in the README: step plugins (Python code installed in the
station's environment) and the CA's key material (pinned by the profile's root_sha256).

May import ate.config and ate.store.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ate.config.errors import InputError
from ate.config.files import FileRefused, read_file
from ate.config.loader import LoadedSequence, load_document, load_sequence
from ate.config.profile import Profile
from ate.store import Store
from ate.store.api import ApprovalRow

Kind = Literal["sequence", "profile"]
KINDS: tuple[Kind, ...] = ("sequence", "profile")
_DIGEST_TAG = b"ate approval v1\n"
_MAX_PART = 64 * 2**20  # a release manifest is small; this only bounds a mistake


class NotApproved(Exception):
    """Production mode met content no engineer approved (the message says which, and how
    to approve it)."""


@dataclass(frozen=True, slots=True)
class Content:
    """One sequence or profile as production sees it."""

    kind: Kind
    name: str  # its name and version, as the file says
    file: Path
    parts: tuple[tuple[str, str], ...]  # (role, sha256) in a fixed order
    digest: str

    @property
    def short(self) -> str:
        return self.digest[:12]


def _digest(kind: Kind, parts: tuple[tuple[str, str], ...]) -> str:
    h = hashlib.sha256(_DIGEST_TAG + kind.encode() + b"\n")
    for role, sha in parts:
        h.update(f"{role} {sha}\n".encode())
    return h.hexdigest()


def sequence_content(path: Path) -> Content:
    """The sequence's digest: its YAML and its test firmware image (InputError if the file
    does not load, as `ate validate` says)."""
    return loaded_sequence_content(load_sequence(path))


def loaded_sequence_content(seq: LoadedSequence) -> Content:
    """The digest of a sequence as it was loaded: the bytes the station will run."""
    parts = (
        ("sequence", seq.sha256),
        ("test_firmware", seq.firmware_sha256),
        *((f"include {name}", sha) for name, sha in seq.includes),
    )
    name = f"{seq.model.sequence} {seq.model.version}"
    return Content("sequence", name, seq.path, parts, _digest("sequence", parts))


def profile_content(path: Path) -> Content:
    """The profile's digest: its YAML and its release manifest."""
    loaded = load_document(path, Profile)
    release = (loaded.path.parent / loaded.model.release).resolve()
    try:
        manifest = read_file(release, _MAX_PART)
    except FileRefused as exc:
        line, column = loaded.positions.value(("release",))
        raise InputError(loaded.path, f"release manifest: {exc}", line, column) from None
    parts = (("profile", loaded.sha256), ("release", hashlib.sha256(manifest).hexdigest()))
    return Content("profile", loaded.model.profile, loaded.path, parts, _digest("profile", parts))


def content_of(kind: Kind, path: Path) -> Content:
    return sequence_content(path) if kind == "sequence" else profile_content(path)


def approval_in_force(store: Store, content: Content) -> ApprovalRow:
    """The approval `content` runs under; NotApproved otherwise."""
    row = store.approval_get(content.kind, content.digest)
    if row is None or not row.in_force:
        why = (
            f"its approval was revoked by {row.revoked_by} at {row.revoked_at}"
            if row is not None
            else "it is not approved for production"
        )
        raise NotApproved(
            f"{content.kind} {content.name} ({content.file.name}, digest {content.short}): "
            f"{why}; an engineer approves it with `ate approval add {content.file}`"
        )
    return row


def check_production(
    store: Store, sequence: LoadedSequence, profile: Path | None
) -> list[tuple[Content, ApprovalRow]]:
    """What a station in production mode is about to run, each with its approval;
    NotApproved for the first that has none."""
    contents = [loaded_sequence_content(sequence)]
    if profile is not None:
        contents.append(profile_content(profile))
    return [(c, approval_in_force(store, c)) for c in contents]


def candidates(kind: Kind, folder: Path) -> list[Content]:
    """The loadable files of `kind` in `folder` (what an engineer may switch to on the
    page), each with its digest; files that do not load are left out."""
    found: list[Content] = []
    for path in sorted(folder.glob("*.y*ml")):
        try:
            found.append(content_of(kind, path))
        except (InputError, OSError):
            continue
    return found
