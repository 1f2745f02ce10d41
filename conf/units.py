"""Units shared by the settings, the reports and the code that measures."""

MIB = 1_048_576
"""Bytes in a mebibyte: what the settings (``BACKUP_MIN_FREE_MB``) and every report call MB."""
