"""One exception hierarchy: every message is what the user sees, on one line."""


class BoxerError(Exception):
    """Anything boxer reports to its user instead of a traceback."""


class DockerfileError(BoxerError):
    """A Dockerfile that cannot be built; the message names the file and line."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path, self.line, self.reason = path, line, message
        where = f"{path or 'Dockerfile'}:{line}: " if line else (f"{path}: " if path else "")
        super().__init__(where + message)


class BuildError(BoxerError):
    """The build failed while assembling the root filesystem."""


class ImageError(BoxerError):
    """An image file that is missing, truncated, tampered with or not a boxer image."""


class RunError(BoxerError):
    """The image could not be started (the guest's own failures are exit codes, not errors).

    `exit_code` follows Docker: 125 for boxer's own failure, 126 for a command that is not a
    WebAssembly program, 127 for a command that is not found.
    """

    def __init__(self, message: str, exit_code: int = 125):
        self.exit_code = exit_code
        super().__init__(message)


class ShellError(BoxerError):
    """A RUN script the shell cannot run (unsupported syntax or option); one line, no location."""


class RegistryError(BoxerError):
    """The registry refused, failed, or could not be reached."""


class AuthError(RegistryError):
    """Missing or wrong credentials."""


class InvalidReference(BoxerError):
    """A name that is not a valid image reference."""
