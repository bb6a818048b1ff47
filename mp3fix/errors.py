"""Typed errors. Each one is a user-facing problem the CLI prints as one line."""

from __future__ import annotations


class Mp3fixError(Exception):
    """Base class: anything mp3fix reports to the user as one clean line."""


class DecodeError(Mp3fixError):
    """The input could not be read as audio (empty, corrupt, not audio, truncated)."""


class OutputError(Mp3fixError):
    """The output path or format is not usable (bad extension, exists, not writable)."""


class ModelError(Mp3fixError):
    """The model or its sidecar is missing, corrupt, or inconsistent."""


class DeviceError(Mp3fixError):
    """The requested execution device is not available."""


class FfmpegNotFoundError(Mp3fixError):
    """No ffmpeg executable could be found."""


class PlanError(Mp3fixError):
    """The inputs and outputs asked for do not make a valid plan (missing input,
    conflicting options, two inputs writing the same output)."""
