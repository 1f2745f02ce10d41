"""Exit codes both processes agree on."""

EXIT_OK = 0
EXIT_BAD_SETTINGS = 2
"""A setting cannot be used; the process printed one line naming the variable."""
EXIT_REFUSED = 3
"""The watchdog will not run here (another one holds DATA_DIR, or the disk would not persist)."""
EXIT_NOT_CONFIGURED = 78
"""The bot has no token, or Telegram rejected it: restarting cannot help (sysexits' EX_CONFIG)."""
EXIT_DATABASE = 65
"""The bot could not use the database (sysexits' EX_DATAERR): the watchdog checks it at once."""
