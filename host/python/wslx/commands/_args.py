"""Argument types shared by the commands: a mistake is caught while the command line is
parsed and reported by wslx.cli as one line naming the argument, the path and the problem
(exit 2), before anything is built or started."""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def existing_file(text: str) -> Path:
    """A path that names a readable regular file."""
    path = Path(text)
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise argparse.ArgumentTypeError(f"{path}: not found") from None
    except OSError as e:
        raise argparse.ArgumentTypeError(f"{path}: {e.strerror}") from None
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{path}: not a regular file")
    return path


def existing_file_or_dir(text: str) -> Path:
    """A path that names a readable regular file or a directory."""
    path = Path(text)
    if path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):
            raise argparse.ArgumentTypeError(f"{path}: directory not readable")
        return path
    return existing_file(text)


def kernel_image(text: str) -> Path:
    """An existing file a guest can boot: a bzImage or an ELF kernel with a usable entry."""
    from ..guests.base import KernelImageError, check_kernel_image
    path = existing_file(text)
    try:
        check_kernel_image(path)
    except KernelImageError as e:
        raise argparse.ArgumentTypeError(e.message) from None
    return path


def output_dir(text: str) -> Path:
    """A folder the command can write into (made if missing)."""
    path = Path(text)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise argparse.ArgumentTypeError(f"{path}: cannot create the folder: {e.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{path}: folder is not writable")
    return path


def output_file(text: str) -> Path:
    """A file the command will write, in a folder that exists and is writable (checked now,
    so a long run does not end in a write error)."""
    path = Path(text)
    folder = path.parent
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: is a folder, want a file name")
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{path}: folder {folder} is not writable")
    return path


def _positive(text: str, convert, kind: str):
    try:
        x = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
    if not 0 < x < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be positive (at least 1 for a count)")
    return x


def positive_int(text: str) -> int:
    """A count: a whole number, at least 1."""
    return _positive(text, int, "a whole number")


def positive_float(text: str) -> float:
    """Seconds: a finite number above 0."""
    return _positive(text, float, "a number")
