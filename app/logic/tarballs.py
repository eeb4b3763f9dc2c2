"""Safe extraction of uploaded code tarballs into a scratch directory, and their content address.

Every member is checked before it is written: absolute names, `..`, device files and FIFOs,
links whose target leaves the tree, more entries or more uncompressed bytes than allowed, and
bytes that are not a gzip-compressed tar all raise :class:`TarballError`. Writes never follow a
symlink out of the tree (parents are resolved with ``realpath`` before anything is created), and a
final pass re-resolves every symlink once the tree is complete, because a later member can change
what an earlier link's target path means (``t -> x/..`` followed by ``x -> .``).

The caller owns ``dest``: it must not exist, and it is removed on any error.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

GZIP_MAGIC = b"\x1f\x8b"
# Deeper trees or longer names are refused before anything is written: the kernel's PATH_MAX
# (4096) and NAME_MAX (255) would refuse them anyway, and the recursive helpers that walk a tree
# (os.makedirs, shutil.rmtree, shutil.copytree) overflow the stack near 1,000 levels.
MAX_DEPTH = 100
MAX_PATH_BYTES = 1024
MAX_PART_BYTES = 255
SHOWN_CHARS = 120
# Data is copied in 1 MiB reads; only tar headers (pax, GNU long names) are read whole. A header
# larger than this is a memory bomb, not a file name.
MAX_SINGLE_READ = 16 * 1024 * 1024
COPY_CHUNK = 1024 * 1024


class TarballError(Exception):
    """An upload that cannot be accepted; ``status_code`` is 400, or 413 for size limits."""

    def __init__(self, message: str, *, status_code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class EmptyTarball(TarballError):
    """A tarball without a single file (nothing, or only directories)."""


@dataclass(frozen=True)
class Limits:
    max_uncompressed_bytes: int
    max_files: int


@dataclass(frozen=True)
class Extracted:
    commit: str  # sha256 of the normalised content (paths, types, exec bits, bytes, link targets)
    size_bytes: int  # sum of regular file sizes
    num_files: int  # regular files


class _TooLarge(Exception):
    pass


class _BoundedGzip:
    """A GzipFile that refuses to decompress more than ``limit`` bytes in total."""

    def __init__(self, gz: gzip.GzipFile, limit: int) -> None:
        self._gz = gz
        self._limit = limit

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._limit - self._gz.tell() + 1
        if size > MAX_SINGLE_READ:
            raise TarballError(f"A tar header is larger than {MAX_SINGLE_READ} bytes.")
        if self._gz.tell() + size > self._limit + tarfile.RECORDSIZE:
            raise _TooLarge()
        return self._gz.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET and offset > self._limit + tarfile.RECORDSIZE:
            raise _TooLarge()
        return self._gz.seek(offset, whence)

    def tell(self) -> int:
        return self._gz.tell()


def show(name: str) -> str:
    """A member name fit for an error message: printable, escaped, at most SHOWN_CHARS long."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def _size(name: str) -> int:
    return len(name.encode("utf-8", "surrogateescape"))


def normalise_name(name: str) -> str | None:
    """`./a//b` → `a/b`; None for the root itself; TarballError for absolute names, `..`, NUL
    characters, and paths deeper or longer than a tree may hold."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise TarballError(f"The tarball contains an absolute path: `{show(name)}`.")
    if "\x00" in name:
        raise TarballError(f"The tarball contains a name with a NUL character: `{show(name)}`.")
    if _size(name) > MAX_PATH_BYTES * 4:  # before splitting a multi-megabyte GNU long name
        raise TarballError(f"The tarball contains a path longer than {MAX_PATH_BYTES} bytes.")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise TarballError(f"The tarball contains a path with `..`: `{show(name)}`.")
    if len(parts) > MAX_DEPTH:
        raise TarballError(
            f"The tarball contains a path {len(parts)} levels deep (at most "
            f"{MAX_DEPTH}): `{show(name)}`."
        )
    normal = "/".join(parts)
    if _size(normal) > MAX_PATH_BYTES:
        raise TarballError(
            f"The tarball contains a path longer than {MAX_PATH_BYTES} bytes: `{show(name)}`."
        )
    if any(_size(part) > MAX_PART_BYTES for part in parts):
        raise TarballError(
            f"The tarball contains a file or directory name longer than {MAX_PART_BYTES} "
            f"bytes: `{show(name)}`."
        )
    return normal or None


def _outside(name: str, target: str) -> TarballError:
    return TarballError(f"The symlink `{show(name)}` points outside the tree (`{show(target)}`).")


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _hash_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _Extractor:
    def __init__(self, tar: tarfile.TarFile, root: str, limits: Limits) -> None:
        self.tar = tar
        self.root = root
        self.limits = limits
        # Normalised path → ("d",) | ("f", exec, sha256, size) | ("l", target). Later members
        # with the same name replace earlier ones, as tar does.
        self.entries: dict[str, tuple] = {}
        self.members = 0
        self.data_bytes = 0
        self.copied: set[str] = set()  # hard links, copied with the source's mode
        # Resolved parent directories by archive dirname; cleared whenever a link appears or
        # an entry is replaced, since either can change what a path resolves to.
        self._parents: dict[str, str] = {}

    def run(self) -> None:
        for member in self.tar:
            self.members += 1
            if self.members > self.limits.max_files:
                raise TarballError(
                    f"The tarball has more than {self.limits.max_files} entries.", status_code=413
                )
            name = normalise_name(member.name)
            if name is None:
                continue
            try:
                self._extract(member, name)
            except (OSError, ValueError) as exc:
                reason = getattr(exc, "strerror", None) or exc
                raise TarballError(f"Cannot extract `{show(name)}`: {reason}.") from None
        if not any(entry[0] != "d" for entry in self.entries.values()):
            raise EmptyTarball("The tarball contains no files.")
        self._check_links()

    def _target(self, name: str, *, is_dir: bool = False) -> str:
        """Where `name` goes: its parent resolved (never through a link out), created if new."""
        dirname = os.path.dirname(name)
        parent = self._parents.get(dirname)
        if parent is None:
            parent = os.path.realpath(os.path.join(self.root, dirname))
            if not _inside(self.root, parent):
                raise TarballError(
                    f"`{show(name)}` would be written through a link that leaves the tree."
                )
            os.makedirs(parent, exist_ok=True)
            self._parents[dirname] = parent
        path = os.path.join(parent, os.path.basename(name))
        if os.path.lexists(path):
            if os.path.isdir(path) and not os.path.islink(path):
                if not is_dir:
                    raise TarballError(
                        f"`{show(name)}` is both a directory and a file in the tarball."
                    )
            else:
                os.unlink(path)
                self._parents.clear()  # a replaced link may have been a cached parent
        return path

    def _extract(self, member: tarfile.TarInfo, name: str) -> None:
        if member.isdev():
            raise TarballError(f"The tarball contains a device file or FIFO: `{show(name)}`.")
        if member.isdir():
            path = self._target(name, is_dir=True)
            os.makedirs(path, exist_ok=True)
            self.entries.setdefault(name, ("d",))
        elif member.isreg():
            self._extract_file(member, name)
        elif member.issym():
            self._extract_symlink(member, name)
        elif member.islnk():
            self._extract_hardlink(member, name)
        else:
            raise TarballError(f"Unsupported tar member type for `{show(name)}`.")

    def _extract_file(self, member: tarfile.TarInfo, name: str) -> None:
        if self.data_bytes + member.size > self.limits.max_uncompressed_bytes:
            raise _TooLarge()
        self.data_bytes += member.size
        path = self._target(name)
        source = self.tar.extractfile(member)
        assert source is not None  # regular members always have data
        digest = hashlib.sha256()
        executable = bool(member.mode & 0o111)
        # Created read-only at once (the mode applies to later opens, not to this descriptor).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o555 if executable else 0o444)
        with open(fd, "wb") as out:
            while chunk := source.read(COPY_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        self.entries[name] = ("f", executable, digest.hexdigest(), member.size)

    def _extract_symlink(self, member: tarfile.TarInfo, name: str) -> None:
        target = member.linkname
        if "\x00" in target or _size(target) > MAX_PATH_BYTES:
            raise TarballError(f"The symlink `{show(name)}` has an invalid or too long target.")
        if not target or os.path.isabs(target) or target.startswith("\\"):
            raise _outside(name, target)
        path = self._target(name)
        resolved = os.path.realpath(os.path.join(os.path.dirname(path), target))
        if not _inside(self.root, resolved):
            raise _outside(name, target)
        os.symlink(target, path)
        self._parents.clear()
        self.entries[name] = ("l", target)

    def _extract_hardlink(self, member: tarfile.TarInfo, name: str) -> None:
        try:
            target_name = normalise_name(member.linkname)
        except TarballError:
            target_name = None
        resolved = (
            os.path.realpath(os.path.join(self.root, target_name)) if target_name else self.root
        )
        if not _inside(self.root, resolved) or resolved == self.root:
            raise TarballError(
                f"The hard link `{show(name)}` points outside the tree (`{show(member.linkname)}`)."
            )
        if not os.path.isfile(resolved):
            raise TarballError(
                f"The hard link `{show(name)}` points to `{show(member.linkname)}`, which is not "
                "a file earlier in the tarball."
            )
        path = self._target(name)
        # A copy, not os.link: versions never share inodes with anything else.
        shutil.copyfile(resolved, path)
        size = os.path.getsize(path)
        self.data_bytes += size
        if self.data_bytes > self.limits.max_uncompressed_bytes:
            raise _TooLarge()
        executable = bool(os.stat(resolved).st_mode & 0o111)
        self.entries[name] = ("f", executable, _hash_file(path), size)
        self.copied.add(name)

    def _check_links(self) -> None:
        for name, entry in self.entries.items():
            if entry[0] != "l":
                continue
            resolved = os.path.realpath(os.path.join(self.root, name))
            if not _inside(self.root, resolved):
                raise _outside(name, entry[1])

    def commit(self) -> Extracted:
        digest = hashlib.sha256()
        size = files = 0
        for name in sorted(self.entries):
            entry = self.entries[name]
            if entry[0] == "f":
                files += 1
                size += entry[3]
                line = f"f\0{name}\0{'x' if entry[1] else '-'}\0{entry[2]}\n"
            elif entry[0] == "l":
                line = f"l\0{name}\0{entry[1]}\n"
            else:
                line = f"d\0{name}\n"
            digest.update(line.encode("utf-8", "surrogateescape"))
        return Extracted(commit=digest.hexdigest(), size_bytes=size, num_files=files)

    def finalise_modes(self) -> None:
        """Versions are immutable: files read-only (exec bit kept), directories read-only."""
        for name, entry in self.entries.items():
            if entry[0] == "f" and name in self.copied:
                os.chmod(os.path.join(self.root, name), 0o555 if entry[1] else 0o444)
        dirs = {""}
        for name, entry in self.entries.items():
            parent = name if entry[0] == "d" else os.path.dirname(name)
            while parent and parent not in dirs:
                dirs.add(parent)
                parent = os.path.dirname(parent)
        for name in sorted(dirs, key=len, reverse=True):
            path = os.path.join(self.root, name) if name else self.root
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, 0o555)


def extract_tarball(archive: Path, dest: Path, limits: Limits) -> Extracted:
    """Check and extract `archive` (.tar.gz) into `dest` (created); remove `dest` on any error."""
    with open(archive, "rb") as raw:
        if raw.read(2) != GZIP_MAGIC:
            raise TarballError("The upload is not a gzip-compressed tarball (.tar.gz).")
        raw.seek(0)
        dest.mkdir(parents=True)
        root = os.path.realpath(dest)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                bounded = _BoundedGzip(gz, limits.max_uncompressed_bytes)
                try:
                    tar = tarfile.open(fileobj=bounded, mode="r:")  # type: ignore[call-overload]
                except tarfile.ReadError as exc:
                    raise TarballError(f"The upload is not a valid tarball ({exc}).") from None
                with tar:
                    extractor = _Extractor(tar, root, limits)
                    extractor.run()
                    result = extractor.commit()
                    extractor.finalise_modes()
                    return result
        except _TooLarge:
            remove_tree(dest)
            raise TarballError(
                f"The tarball is larger than {limits.max_uncompressed_bytes} bytes uncompressed.",
                status_code=413,
            ) from None
        except (gzip.BadGzipFile, EOFError, zlib.error, tarfile.TarError) as exc:
            remove_tree(dest)
            raise TarballError(f"The upload is not a valid .tar.gz ({exc}).") from None
        except BaseException:
            remove_tree(dest)
            raise


def _make_writable(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISDIR(mode):
            os.chmod(path, 0o755)
    except OSError:
        pass


def remove_tree(path: Path) -> None:
    """rmtree that also removes read-only version trees (directories are 0555)."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    for dirpath, dirnames, _files in os.walk(path):
        _make_writable(dirpath)
        for dirname in dirnames:
            _make_writable(os.path.join(dirpath, dirname))
    shutil.rmtree(path, ignore_errors=True)
