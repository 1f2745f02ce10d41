import os

os.umask(0o077)  # before anything is created: data files are owner-only (watchdog.data.fs)

from watchdog.cli import main  # noqa: E402

raise SystemExit(main())
