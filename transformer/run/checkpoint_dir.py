"""The run's checkpoints/ folder: the only code that knows its file names, writes, links, prunes,
sets aside and says which file is the run's last, best, kept or final checkpoint.

The folder's truth is `manifest.json`, written last and renamed into place at every save (the way
git publishes a commit by moving one ref). It names the run's id and, with their updates, the
state to resume from ("last"), the best-validating one ("best"), the periodic ones kept for
averaging ("kept", oldest first) and final.pt. State files are never overwritten: each save
writes a new `checkpoint_<update>.pt` (at validations) or `state_<update>.pt` (at a signal
stop), so a crash at any point leaves the folder at the old manifest or the new one. `last.pt`
and `best.pt` are hard links to the manifest's files, for people and older tools; a file the
manifest does not name is never resumed from, averaged or chosen.

This module reads the folder and saves into it; `recovery.py` repairs what a crash left,
`upgrade.py` adopts folders saved before manifests, and `fork.py` resumes from an earlier update.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import secrets
import shutil
import time
from pathlib import Path

from transformer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from transformer.run.layout import BEST, FINAL, LAST, MANIFEST
from transformer.run.manifest import Entry, Manifest, new_run_id

logger = logging.getLogger(__name__)


def _is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # torch's zip writer reports a failed write as a RuntimeError
    return isinstance(error, RuntimeError) and "write failed" in str(error).lower()


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointDir:
    """A run's checkpoints/ folder, read through its manifest.

    Args:
        folder: the checkpoints/ folder (it need not exist yet).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.manifest = self._read_manifest()
        self.run_id = self.manifest.run_id if self.manifest else new_run_id()

    # ------------------------------------------------------------------------------ reading

    def _read_manifest(self) -> Manifest | None:
        path = self.folder / MANIFEST
        if not path.is_file():
            return None
        try:
            return Manifest.from_json(path.read_text("utf-8"))
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(
                f"{path} is not a readable manifest ({error}); set train.resume=false to start "
                "over (the folder is set aside, nothing is deleted)."
            ) from error

    def path(self, entry: Entry) -> Path:
        return self.folder / entry.file

    @property
    def last_path(self) -> Path:
        """last.pt: the name people and messages use for the state a run resumes from."""
        return self.folder / LAST

    @property
    def last(self) -> Entry | None:
        return self.manifest.last if self.manifest else None

    @property
    def best(self) -> Entry | None:
        return self.manifest.best if self.manifest else None

    @property
    def kept(self) -> list[Entry]:
        return list(self.manifest.kept) if self.manifest else []

    @property
    def final(self) -> Entry | None:
        return self.manifest.final if self.manifest else None

    def reported(self) -> Path | None:
        """The file that stands for the run: final.pt, else the best, else the last state."""
        for entry in (self.final, self.best, self.last):
            if entry is not None:
                return self.path(entry)
        return None

    def steps(self) -> list[int]:
        """Every update the manifest holds a state of, in order."""
        entries = [self.last, self.best, *self.kept]
        return sorted({entry.step for entry in entries if entry is not None})

    # ------------------------------------------------------------------------------ writing

    def fresh_name(self, stem: str) -> str:
        taken = self.manifest.files() if self.manifest else set()
        name, k = f"{stem}.pt", 0
        while name in taken or (self.folder / name).exists():
            k += 1
            name = f"{stem}.{k}.pt"
        return name

    def write_state(self, name: str, state: dict) -> None:
        """Write `state` atomically as `name` (never an existing file): `save_checkpoint`."""
        save_checkpoint(self.folder / name, state)

    def link(self, source: str, name: str) -> None:
        """Point `name` (last.pt, best.pt) at `source`: a hard link renamed into place."""
        target = self.folder / name
        if target.is_file() and os.path.samefile(target, self.folder / source):
            return
        tmp = self.folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            try:
                os.link(self.folder / source, tmp)
            except OSError as error:  # file systems without hard links
                if _is_disk_full(error):
                    raise
                shutil.copyfile(self.folder / source, tmp)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def publish(self, manifest: Manifest) -> None:
        """Write the manifest to a temporary file and rename it into place: the save's commit."""
        tmp = self.folder / f".{MANIFEST}.{secrets.token_hex(4)}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(manifest.to_json() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.folder / MANIFEST)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_folder(self.folder)
        self.manifest = manifest

    def collect(self) -> None:
        """Delete the files the manifest no longer refers to (never one it does)."""
        assert self.manifest is not None
        live = self.manifest.files()
        for name in self.manifest.unreferenced:
            if name not in live:
                (self.folder / name).unlink(missing_ok=True)

    def _disk_full(self, what: str, error: BaseException) -> CheckpointError:
        last = self.last
        kept = f"the previous checkpoint (update {last.step}) is intact" if last else "no older"
        return CheckpointError(
            f"no space left on the device of {self.folder} while saving {what} ({error}); "
            f"{kept} and the partial files were removed. Free some space, then run the same "
            "command again to resume."
        )

    def save(self, state: dict, *, is_best: bool, periodic: bool, keep_last: int) -> Path:
        """Publish `state` as the run's last state (and best, and kept, as asked).

        Args:
            state: a checkpoint dict (`transformer.training.state.checkpoint_state`).
            is_best: it scored the best validation so far.
            periodic: keep it for averaging (at validations), among the newest `keep_last`.
            keep_last: how many periodic states to keep (0 keeps none).

        Returns:
            The state file written.

        Raises:
            CheckpointError: the disk is full (the folder is left as it was).
        """
        old = self.manifest or Manifest(run_id=self.run_id)
        step = state["step"]
        name = self.fresh_name(f"checkpoint_{step:08d}" if periodic else f"state_{step:08d}")
        entry = Entry(name, step)
        kept = [*old.kept, entry] if periodic else list(old.kept)
        new = Manifest(
            run_id=old.run_id,
            last=entry,
            best=entry if is_best else old.best,
            kept=kept[-keep_last:] if keep_last else [],
        )
        leftover = {name for name in old.unreferenced if (self.folder / name).exists()}
        gone = (old.files() | leftover) - new.files()
        new.unreferenced = sorted(gone | {FINAL})  # final.pt no longer holds the run's result
        try:
            self.write_state(name, {**state, "run_id": old.run_id})
            self.link(name, LAST)
            if new.best is not None:
                self.link(new.best.file, BEST)
            self.publish(new)
        except (OSError, RuntimeError) as error:
            if not _is_disk_full(error):
                raise
            (self.folder / name).unlink(missing_ok=True)
            if self.manifest is None:  # the first save: nothing to point last.pt/best.pt at
                for link in (LAST, BEST):
                    (self.folder / link).unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # links take no data blocks, but be safe
                self.sync_links()  # last.pt and best.pt back to the published manifest
            raise self._disk_full(f"update {step}", error) from error
        self.collect()
        what = f"{name}{' (best)' if is_best else ''}"
        logger.info("saved %s as %s (update %d)", self.folder / LAST, what, step)
        return self.folder / name

    def save_final(self, state: dict, description: str) -> Path:
        """Write final.pt (the model the run reports) and name it in the manifest."""
        assert self.manifest is not None, "final.pt follows a saved state"
        path = self.folder / FINAL
        try:
            self.write_state(FINAL, {**state, "run_id": self.run_id})
            new = dataclasses.replace(
                self.manifest, final=Entry(FINAL, state["step"]), final_description=description
            )
            new.unreferenced = [name for name in new.unreferenced if name != FINAL]
            self.publish(new)
        except (OSError, RuntimeError) as error:
            if not _is_disk_full(error):
                raise
            raise self._disk_full(FINAL, error) from error
        return path

    def sync_links(self) -> None:
        """last.pt and best.pt as the manifest says (a crash may have left them ahead of it)."""
        if self.manifest is None:
            return
        for name, entry in ((LAST, self.manifest.last), (BEST, self.manifest.best)):
            if entry is not None:
                self.link(entry.file, name)
            else:
                (self.folder / name).unlink(missing_ok=True)

    def set_aside(self, folder_name: str, names: list[str]) -> Path | None:
        """Move files of this folder into a subfolder `folder_name` (nothing is deleted)."""
        present = [name for name in names if (self.folder / name).exists()]
        if not present:
            return None
        aside = self.folder / folder_name
        aside.mkdir()
        for name in present:
            (self.folder / name).rename(aside / name)
        return aside

    def set_aside_later(self, step: int, names: list[str]) -> None:
        """Move `names`, files of updates after `step`, into `later-than-<step>.<time>/`."""
        aside = self.set_aside(f"later-than-{step}.{time.strftime('%Y%m%d-%H%M%S')}", names)
        if aside is not None:
            logger.warning(
                "resuming from update %d: %s, of later updates, moved to %s",
                step, ", ".join(names), aside,
            )  # fmt: skip

    # ------------------------------------------------------------------------------ resuming

    def last_was_deleted(self) -> bool:
        """A manifest without last.pt beside it: someone deleted last.pt to start over.

        last.pt is renamed into place before every manifest, so no crash leaves this state.
        """
        return self.last is not None and not (self.folder / LAST).exists()

    def load_last(self) -> dict | None:
        """The state to resume from (the manifest's last), or None for a new run.

        Raises:
            CheckpointError: the file is unreadable, or belongs to another run.
        """
        if self.last is None:
            return None
        path = self.path(self.last)
        try:
            state = load_checkpoint(path)
        except CheckpointError as error:
            raise CheckpointError(
                f"{error} To go on from an earlier update instead, see tmt-fork "
                f"(updates {', '.join(map(str, self.steps()))}); train.resume=false starts over "
                "(the old files are set aside)."
            ) from error
        if state.get("run_id", self.run_id) != self.run_id:
            raise CheckpointError(
                f"{path} belongs to run {state['run_id']}, but {self.folder / MANIFEST} to run "
                f"{self.run_id}; set train.resume=false to start over."
            )
        return state


def holds_run(folder: Path) -> bool:
    """Whether a checkpoints/ folder holds a run (its manifest, or an old-style last.pt)."""
    return (folder / MANIFEST).is_file() or (folder / LAST).is_file()
