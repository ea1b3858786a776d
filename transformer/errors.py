"""The base of every error a user can fix: its message names the file, line or key, and what to
do. The commands' one error edge (`transformer.commands.edge`) prints it as one line, exit 2."""


class UserError(Exception):
    """A mistake in a command line, a config, a file or the machine that the user can fix."""
