"""Swapping a cleaning's new files in for the old ones, crash-safely.

A cleaning replaces some files of a partition folder (sealed segments, the cleaner's
state) by new ones. The new files are first written and fsynced under a pending name
(``<name>.cleaned``); then one durable commit point, the manifest ``cleaning.swap``
naming the old and the new files, written whole (write, fsync, rename, fsync the folder);
then the pending files are renamed over their names, the old files no longer wanted are
deleted, and the manifest goes. :func:`recover_swap` finishes from any point: with a
manifest it rolls forward to the new set, without one it removes the pending files and
the old set stands. Either way no mix of the two is ever left.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass

from eventstore.errors import CorruptLog
from eventstore.storage.segment import fsync_directory, fsync_file, remove_database_files

MANIFEST = "cleaning.swap"
PENDING_SUFFIX = ".cleaned"
_MANIFEST_PENDING = MANIFEST + PENDING_SUFFIX


def pending_path(directory: str, name: str) -> str:
    """Where the new file for ``name`` is written before the swap commits."""
    return os.path.join(directory, name + PENDING_SUFFIX)


@dataclass(frozen=True, slots=True)
class Swap:
    """One swap in ``directory``: the ``old`` file names give way to the ``new`` ones,
    whose pending files are written (and fsynced) already. A name may be in both."""

    directory: str
    old: tuple[str, ...]
    new: tuple[str, ...]

    def pending_exist(self) -> bool:
        """Whether every new file is still there under its pending name (an owner
        reopening the folder meanwhile would have removed them)."""
        return all(os.path.exists(pending_path(self.directory, name)) for name in self.new)


def swap_steps(swap: Swap) -> list[Callable[[], None]]:
    """The swap as its steps, each one rename or deletion (a crash falls between two):
    commit the manifest, install each new file, delete each old one left, drop the
    manifest. Run in order they are :func:`swap_in`; tests stop after any of them."""
    directory = swap.directory
    steps: list[Callable[[], None]] = [lambda: _commit(swap)]
    steps += [lambda name=name: _install(directory, name) for name in swap.new]
    steps += [lambda name=name: _delete(directory, name)
              for name in swap.old if name not in swap.new]
    steps.append(lambda: _delete(directory, MANIFEST))
    return steps


def swap_in(swap: Swap) -> None:
    """Replace the old files by the new ones (see the module's protocol)."""
    for step in swap_steps(swap):
        step()


def discard_pending(swap: Swap) -> None:
    """Remove the pending files of a swap that will not be made (the old set stands).
    Once its manifest is committed they are the new set: they stay, for recover_swap."""
    if os.path.exists(os.path.join(swap.directory, MANIFEST)):
        return
    for name in swap.new:
        remove_database_files(pending_path(swap.directory, name))
    fsync_directory(swap.directory)


def recover_swap(directory: str) -> bool | None:
    """Finish or undo a swap a crash cut short in ``directory``; run before the folder's
    files are opened. True: rolled forward to the new set; False: pending files of an
    uncommitted swap removed, the old set stands; None: there was nothing to do."""
    manifest = os.path.join(directory, MANIFEST)
    try:
        with open(manifest, encoding="utf-8") as fh:
            old, new = json.load(fh)
    except FileNotFoundError:
        return _roll_back(directory)
    except ValueError as exc:  # written whole before its rename: only damage does this
        raise CorruptLog(f"{manifest}: the cleaning's manifest cannot be read ({exc})") from exc
    for step in swap_steps(Swap(directory, tuple(old), tuple(new)))[1:]:  # past the commit
        step()
    _roll_back(directory)  # a pending file no manifest names is not wanted
    return True


def _roll_back(directory: str) -> bool | None:
    pending = [name for name in os.listdir(directory) if name.endswith(PENDING_SUFFIX)]
    for name in pending:
        remove_database_files(os.path.join(directory, name))
    if pending:
        fsync_directory(directory)
        return False
    return None


def _commit(swap: Swap) -> None:
    """The commit point: the manifest under its name, durably."""
    fsync_directory(swap.directory)  # the pending files' names first
    pending = os.path.join(swap.directory, _MANIFEST_PENDING)
    with open(pending, "w", encoding="utf-8") as fh:
        json.dump([list(swap.old), list(swap.new)], fh)
    fsync_file(pending)
    os.rename(pending, os.path.join(swap.directory, MANIFEST))
    fsync_directory(swap.directory)


def _install(directory: str, name: str) -> None:
    """The new file under its name; done already (by the swap a crash cut short) when its
    pending file is gone."""
    with contextlib.suppress(FileNotFoundError):
        os.replace(pending_path(directory, name), os.path.join(directory, name))
    fsync_directory(directory)


def _delete(directory: str, name: str) -> None:
    remove_database_files(os.path.join(directory, name))
    fsync_directory(directory)


def write_pending_json(directory: str, name: str, value: object) -> None:
    """Write ``value`` as the pending JSON file for ``name``, fsynced."""
    path = pending_path(directory, name)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(value, fh)
    fsync_file(path)
