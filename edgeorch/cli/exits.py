"""The CLI's exit codes: the one list every command's ``--help`` and the man page print (errors carry theirs in ``exit_code``)."""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 70, 130

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "ok"), (1, "failed/invalid (run failed, invalid pipeline, drift found)"),
    (2, "usage or config error (also a request this machine can never serve)"), (3, "not found"),
    (4, "state file unusable"), (5, "conflict (paused pipeline, run still active)"),
    (69, "no daemon running"), (70, "internal error: a bug, please report it (-v shows the traceback)"),
    (75, "daemon busy, timed out or gone meanwhile, or the state folder held by a run without a daemon: "
           "try again (a run it followed goes on)"), (77, "permission denied"),
    (130, "interrupted"),
)
"""Every exit code the CLI uses, with its meaning: the one list ``--help`` prints (errors carry theirs)."""


def exit_codes_text() -> str:
    """:data:`EXIT_CODES` as the block every ``--help`` ends with: a heading, then one code per line."""
    return "exit codes:\n" + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES)
